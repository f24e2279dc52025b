"""Recipients already delivered for a message, so a redelivered task is never sent twice, and
what each delivery's DELIVERED event said, so such a task can publish that event again."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.cassandra.session import AsyncSession, ms_from_cql


@dataclass(frozen=True)
class Delivery:
    at_ms: int
    attempt: int | None  # None: recorded before migration 0004
    mx_host: str
    code: int | None
    reply: str
    tls_version: str | None


class DeliveryLedger:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def delivered(
        self, *, tenant_id: str, message_id: str, recipient: str
    ) -> Delivery | None:
        rows = await self._session.execute(
            "SELECT delivered_at, attempt, mx_host, smtp_code, smtp_reply, tls_version"
            " FROM deliveries WHERE tenant_id = ? AND message_id = ? AND recipient = ?",
            (tenant_id, message_id, recipient),
        )
        if not rows:
            return None
        row = rows[0]
        return Delivery(
            at_ms=ms_from_cql(row.delivered_at),
            attempt=row.attempt,
            mx_host=row.mx_host or "",
            code=row.smtp_code,
            reply=row.smtp_reply or "",
            tls_version=row.tls_version,
        )

    async def record(
        self, *, tenant_id: str, message_id: str, recipient: str, delivery: Delivery
    ) -> None:
        await self._session.execute(
            "INSERT INTO deliveries (tenant_id, message_id, recipient, delivered_at, attempt,"
            " mx_host, smtp_code, smtp_reply, tls_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant_id,
                message_id,
                recipient,
                delivery.at_ms,
                delivery.attempt,
                delivery.mx_host,
                delivery.code,
                delivery.reply[:500],
                delivery.tls_version,
            ),
        )
