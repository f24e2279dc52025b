"""The delivery ledger, the one home of the deliveries table: recipients already delivered for
a message, so a redelivered task is never sent twice, and what each delivery's DELIVERED
event said, so such a task can publish that event again. It is also the timeline's record of
each DELIVERED (services/common/timeline.py merges it), so it is kept as long as the
timeline (services/common/cassandra/retention.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.cassandra.session import AsyncSession, ms_from_cql


@dataclass(frozen=True)
class Delivery:
    at_ms: int
    attempt: int | None  # None: recorded before migration 0004
    mx_host: str
    code: int | None
    reply: str
    tls_version: str | None


_COLUMNS = "SELECT recipient, delivered_at, attempt, mx_host, smtp_code, smtp_reply, tls_version"
_ONE = f"{_COLUMNS} FROM deliveries WHERE tenant_id = ? AND message_id = ? AND recipient = ?"
_OF_MESSAGE = f"{_COLUMNS} FROM deliveries WHERE tenant_id = ? AND message_id = ?"


class DeliveryLedger:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def of_message(self, *, tenant_id: str, message_id: str) -> list[tuple[str, Delivery]]:
        """Every recipient of the message delivered so far, with its delivery."""
        rows = await self._session.execute(_OF_MESSAGE, (tenant_id, message_id))
        return [(row.recipient, _delivery(row)) for row in rows]

    async def delivered(
        self, *, tenant_id: str, message_id: str, recipient: str
    ) -> Delivery | None:
        rows = await self._session.execute(_ONE, (tenant_id, message_id, recipient))
        return _delivery(rows[0]) if rows else None

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


def _delivery(row: Any) -> Delivery:
    return Delivery(
        at_ms=ms_from_cql(row.delivered_at),
        attempt=row.attempt,
        mx_host=row.mx_host or "",
        code=row.smtp_code,
        reply=row.smtp_reply or "",
        tls_version=row.tls_version,
    )
