"""How the connections of one task are made: TLS mode, source address, relay credentials."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from services.common.avro.records import DeliveryTask
from services.common.routing import RoutingSettings, TlsMode
from services.sender.tls import TlsPolicy


class UnknownRoute(Exception):
    """The task names an egress pool or smarthost this sender does not define."""


@dataclass(frozen=True)
class ConnectPath:
    tls: TlsMode = "opportunistic"
    # Part of the connection pool's key: connections of different routes are never shared.
    route: str = ""
    source_addresses: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = None


class Egress:
    def __init__(self, *, routing: RoutingSettings, tls: TlsPolicy) -> None:
        self._routing = routing
        self._tls = tls
        # By route: one per egress pool in the settings (path_for refuses any other), so it
        # is bounded by the configuration, not by traffic.
        self._turns: dict[str, Iterator[str]] = {}

    def path_for(self, task: DeliveryTask) -> ConnectPath:
        if task.smarthost is not None:
            relay = self._routing.smarthosts.get(task.smarthost)
            if relay is None:
                raise UnknownRoute(f"smarthost {task.smarthost!r} is not defined")
            return ConnectPath(
                tls=relay.tls,
                route=f"smarthost:{task.smarthost}",
                username=relay.username,
                password=relay.password.get_secret_value() if relay.password else None,
            )
        domain = task.recipient.rsplit("@", 1)[1]
        tls: TlsMode = "opportunistic" if self._tls.opportunistic else "none"
        if task.tls_required or self._tls.required_for(domain):
            tls = "required"
        if task.egress_pool is None:
            return ConnectPath(tls=tls)
        pool = self._routing.egress_pools.get(task.egress_pool)
        if pool is None:
            raise UnknownRoute(f"egress pool {task.egress_pool!r} is not defined")
        return ConnectPath(
            tls=tls, route=f"pool:{task.egress_pool}", source_addresses=pool.source_addresses
        )

    def source_address(self, path: ConnectPath) -> str | None:
        """The pool's addresses take turns, one per new connection."""
        if not path.source_addresses:
            return None
        turn = self._turns.setdefault(path.route, itertools.cycle(path.source_addresses))
        return next(turn)
