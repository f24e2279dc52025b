"""The delivery ledger, the one home of the deliveries table: recipients already delivered for
a message, so a redelivered task is never sent twice, and what each delivery's DELIVERED
event said, so such a task can publish that event again. It is also the timeline's record of
each DELIVERED (services/common/timeline.py merges it), so it is kept as long as the
timeline (services/common/cassandra/retention.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.cassandra.coalesce import Coalescer
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
_RECORD = (
    "INSERT INTO deliveries (tenant_id, message_id, recipient, delivered_at, attempt,"
    " mx_host, smtp_code, smtp_reply, tls_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The rows of several tasks of a tenant in one query (every pair of the listed messages and
# recipients; those that are not a task of the query are left out).
_SOME = (
    f"{_COLUMNS}, message_id FROM deliveries"
    " WHERE tenant_id = ? AND message_id IN ? AND recipient IN ?"
)
# Tasks per query: the pairs read are at most the square of it, mostly absent.
_TASKS_PER_READ = 16
_OF_MESSAGE = f"{_COLUMNS} FROM deliveries WHERE tenant_id = ? AND message_id = ?"


class DeliveryLedger:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session
        self._reads: Coalescer[str, tuple[str, str], Delivery | None] = Coalescer(
            self._read_some, max_parts=_TASKS_PER_READ
        )

    async def of_message(self, *, tenant_id: str, message_id: str) -> list[tuple[str, Delivery]]:
        """Every recipient of the message delivered so far, with its delivery."""
        rows = await self._session.execute(_OF_MESSAGE, (tenant_id, message_id))
        return [(row.recipient, _delivery(row)) for row in rows]

    async def delivered(
        self, *, tenant_id: str, message_id: str, recipient: str
    ) -> Delivery | None:
        """The recipient's delivery of the message, if any: read with the other tasks the
        sender begins at the same moment (services/common/cassandra/coalesce.py)."""
        return await self._reads(tenant_id, (message_id, recipient))

    async def _read_some(
        self, tenant_id: str, tasks: Sequence[tuple[str, str]]
    ) -> list[Delivery | None]:
        messages = sorted({m for m, _ in tasks})
        recipients = sorted({r for _, r in tasks})
        rows = await self._session.execute(_SOME, (tenant_id, messages, recipients))
        found = {(row.message_id, row.recipient): _delivery(row) for row in rows}
        return [found.get(task) for task in tasks]

    async def record(
        self, *, tenant_id: str, message_id: str, recipient: str, delivery: Delivery
    ) -> None:
        await self._session.write_all(
            [
                (
                    _RECORD,
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
            ]
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
