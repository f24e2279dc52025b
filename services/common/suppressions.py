"""The suppression list: the suppressions and soft_bounces tables, in one place for ingest
(which recipients it may not send to), the event-publisher (what bounces suppress:
event_publisher/suppression.py holds that policy) and `mailstream suppressions`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.cassandra.coalesce import Coalescer
from services.common.cassandra.retention import ttl_until
from services.common.cassandra.session import AsyncSession, ms_from_cql


@dataclass(frozen=True)
class Suppress:
    """An address a tenant may not send to, from created_at (epoch ms) until expires_at."""

    tenant_id: str
    address: str  # lower case
    reason: str
    created_at: int
    expires_at: int | None  # epoch ms; None: never lapses

    def active(self, now_ms: int) -> bool:
        return self.expires_at is None or self.expires_at > now_ms


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


# Written with the suppression's remaining life as TTL, so a lapsed one disappears by itself.
_COLUMNS = "SELECT address, reason, created_at, expires_at FROM suppressions"
_SELECT_MANY = f"{_COLUMNS} WHERE tenant_id = ? AND address IN ?"
_SELECT_ONE = (
    "SELECT address, reason, created_at, expires_at FROM suppressions"
    " WHERE tenant_id = ? AND address = ?"
)
_LIST = (
    "SELECT address, reason, created_at, expires_at FROM suppressions WHERE tenant_id = ? LIMIT ?"
)
_INSERT = (
    "INSERT INTO suppressions (tenant_id, address, reason, created_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?) USING TTL ?"
)
_DELETE = "DELETE FROM suppressions WHERE tenant_id = ? AND address = ?"
# Soft bounces counted towards a suppression, each kept for the counting window.
_INSERT_SOFT = (
    "INSERT INTO soft_bounces (tenant_id, address, event_id, occurred_at, category)"
    " VALUES (?, ?, ?, ?, ?) USING TTL ?"
)
_SELECT_SOFT = "SELECT occurred_at FROM soft_bounces WHERE tenant_id = ? AND address = ?"
_DELETE_SOFT = "DELETE FROM soft_bounces WHERE tenant_id = ? AND address = ?"


# Addresses per query. A request has at most 100 recipients, which always go in one.
_ADDRESSES_PER_READ = 500


def _ms(value: dt.datetime | None) -> int | None:
    return ms_from_cql(value) if value is not None else None


class SuppressionTable:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session
        self._reads: Coalescer[str, tuple[str, ...], dict[str, int | None]] = Coalescer(
            self._suppressed_of, max_parts=64, max_weight=_ADDRESSES_PER_READ, weight=len
        )

    async def suppressed(self, tenant_id: str, addresses: list[str], *, now_ms: int) -> set[str]:
        """Those of the (lower-cased) addresses suppressed for the tenant at now_ms: read with
        the other lists of the tenant asked for at the same moment, in one query
        (services/common/cassandra/coalesce.py)."""
        if not addresses:
            return set()
        found = await self._reads(tenant_id, tuple(addresses))
        return {a for a, expires in found.items() if expires is None or expires > now_ms}

    async def _suppressed_of(
        self, tenant_id: str, lists: Sequence[tuple[str, ...]]
    ) -> list[dict[str, int | None]]:
        """The suppressions of several lists of addresses of a tenant, in one query: each
        list's (address -> expires_at)."""
        wanted = sorted({a for addresses in lists for a in addresses})
        rows = await self._session.execute(_SELECT_MANY, (tenant_id, wanted))
        listed = {r.address: _ms(r.expires_at) for r in rows}
        return [{a: listed[a] for a in addresses if a in listed} for addresses in lists]

    async def get(self, tenant_id: str, address: str) -> Suppress | None:
        rows = await self._session.execute(_SELECT_ONE, (tenant_id, address))
        return _suppress(tenant_id, rows[0]) if rows else None

    async def listed(self, tenant_id: str, *, limit: int) -> list[Suppress]:
        rows = await self._session.execute(_LIST, (tenant_id, limit))
        return [_suppress(tenant_id, r) for r in rows]

    async def put(self, s: Suppress) -> None:
        """Writes (or replaces) the suppression; it lapses from the table at expires_at."""
        ttl = ttl_until(s.expires_at, epoch_ms())
        await self._session.execute(
            _INSERT, (s.tenant_id, s.address, s.reason, s.created_at, s.expires_at, ttl)
        )

    async def remove(self, tenant_id: str, address: str) -> None:
        """Takes the address off the list, and forgets its soft bounces counted so far (they
        would otherwise suppress it again at the next one)."""
        await self._session.execute(_DELETE, (tenant_id, address))
        await self._session.execute(_DELETE_SOFT, (tenant_id, address))

    async def count_soft_bounce(
        self,
        *,
        tenant_id: str,
        address: str,
        event_id: str,
        occurred_at: int,
        category: str,
        window_s: int,
    ) -> list[int]:
        """Records a soft bounce (once per event id) and returns when each soft bounce of the
        address still in the window happened, this one included (epoch ms)."""
        await self._session.execute(
            _INSERT_SOFT, (tenant_id, address, event_id, occurred_at, category, window_s)
        )
        rows = await self._session.execute(_SELECT_SOFT, (tenant_id, address))
        return [ms_from_cql(r.occurred_at) for r in rows]


def _suppress(tenant_id: str, row: Any) -> Suppress:
    return Suppress(
        tenant_id=tenant_id,
        address=row.address,
        reason=row.reason,
        created_at=_ms(row.created_at) or 0,
        expires_at=_ms(row.expires_at),
    )
