"""Recipients already delivered for a message, so a redelivered task is never sent twice."""

from __future__ import annotations

from services.common.cassandra.session import AsyncSession


class DeliveryLedger:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def delivered(self, *, tenant_id: str, message_id: str, recipient: str) -> bool:
        rows = await self._session.execute(
            "SELECT recipient FROM deliveries WHERE tenant_id = ? AND message_id = ?"
            " AND recipient = ?",
            (tenant_id, message_id, recipient),
        )
        return bool(rows)

    async def record(
        self,
        *,
        tenant_id: str,
        message_id: str,
        recipient: str,
        at_ms: int,
        mx_host: str,
        reply: str,
    ) -> None:
        await self._session.execute(
            "INSERT INTO deliveries (tenant_id, message_id, recipient, delivered_at, mx_host,"
            " smtp_reply) VALUES (?, ?, ?, ?, ?, ?)",
            (tenant_id, message_id, recipient, at_ms, mx_host, reply[:500]),
        )
