"""Which recipients a tenant may not send to."""

from __future__ import annotations

from services.common.cassandra.session import AsyncSession, ms_from_cql


class SuppressionList:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def suppressed(self, tenant_id: str, addresses: list[str], *, now_ms: int) -> set[str]:
        if not addresses:
            return set()
        rows = await self._session.execute(
            "SELECT address, expires_at FROM suppressions WHERE tenant_id = ? AND address IN ?",
            (tenant_id, addresses),
        )
        out = set()
        for row in rows:
            expires = row.expires_at
            if expires is None or ms_from_cql(expires) > now_ms:
                out.add(row.address)
        return out
