"""Routing policy: where one task goes (the recipient domain's MX hosts or a smarthost), from
which egress pool, and whether the domain's MTA-STS policy makes verified TLS a must."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.avro.records import DeliveryTask, MxHost
from services.common.logging import get_logger
from services.common.reasons import Reason
from services.common.routing import RoutingSettings
from services.common.tenants import TenantDirectory
from services.router.mta_sts import MtaStsResolver
from services.router.mx import DnsTemporaryFailure, MxResolver

log = get_logger(__name__)


class Unroutable(Exception):
    """No usable route now, for a reason an operator or the domain may fix: retried later."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    hosts: list[MxHost]  # in the order to try
    egress_pool: str | None = None
    smarthost: str | None = None
    tls_required: bool = False


class RoutePlanner:
    def __init__(
        self,
        *,
        mx: MxResolver,
        tenants: TenantDirectory,
        routing: RoutingSettings,
        sts: MtaStsResolver | None,
    ) -> None:
        self._mx = mx
        self._tenants = tenants
        self._routing = routing
        self._sts = sts

    async def plan(self, task: DeliveryTask) -> Plan:
        """Raises NoRoute (the domain takes no mail), DnsTemporaryFailure or Unroutable."""
        tenant = await self._tenants.get(task.tenant_id)
        spec = tenant.routing.for_priority(task.priority) if tenant else None
        if spec is not None and spec.smarthost is not None:
            return await self._smarthost(spec.smarthost)
        pool = spec.egress_pool if spec is not None else self._routing.default_egress_pool
        if pool is not None and pool not in self._routing.egress_pools:
            raise Unroutable(Reason.ROUTE_UNAVAILABLE, f"egress pool {pool!r} is not defined")
        domain = task.recipient.rsplit("@", 1)[1].lower()
        route = await self._mx.resolve(domain)
        hosts, tls_required = await self._apply_mta_sts(domain, route.hosts)
        return Plan(hosts, egress_pool=pool, tls_required=tls_required)

    async def _smarthost(self, name: str) -> Plan:
        relay = self._routing.smarthosts.get(name)
        if relay is None:
            raise Unroutable(Reason.ROUTE_UNAVAILABLE, f"smarthost {name!r} is not defined")
        addresses = await self._mx.addresses(relay.host)
        if not addresses:
            raise DnsTemporaryFailure(f"smarthost {relay.host} has no address")
        hosts = [MxHost(host=relay.host, address=a, port=relay.port) for a in addresses]
        return Plan(hosts, smarthost=name)

    async def _apply_mta_sts(self, domain: str, hosts: list[MxHost]) -> tuple[list[MxHost], bool]:
        """RFC 8461 §4: under an enforced policy only matching MX hosts are tried, and only
        over verified TLS; a testing policy changes nothing but is logged when violated."""
        policy = await self._sts.policy(domain) if self._sts is not None else None
        if policy is None or policy.mode == "none":
            return hosts, False
        matching = [h for h in hosts if policy.matches(h.host)]
        if not policy.enforced:
            if len(matching) < len(hosts):
                log.info("mta_sts_testing_mx_mismatch", domain=domain, policy=policy.policy_id)
            return hosts, False
        if not matching:
            raise Unroutable(
                Reason.MTA_STS_MX_MISMATCH,
                f"no MX host of {domain} matches its MTA-STS policy {policy.mx_patterns}",
            )
        return matching, True
