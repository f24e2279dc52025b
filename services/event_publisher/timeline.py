"""The per-message timeline and by-recipient index in Cassandra."""

from __future__ import annotations

import asyncio

from services.common.avro.records import EmailEvent
from services.common.cassandra.session import AsyncSession

_EVENT = (
    "INSERT INTO message_events (message_id, occurred_at, event_id, tenant_id, priority,"
    " recipient, type, attempt, reason, smtp_code, smtp_enhanced, smtp_text, mx_host,"
    " tls_version, bounce_kind, bounce_category, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BY_RECIPIENT = (
    "INSERT INTO recipient_messages (recipient, occurred_at, message_id, tenant_id, type)"
    " VALUES (?, ?, ?, ?, ?)"
)


# Longer than any valid address (RFC 5321 allows 254 octets); Cassandra refuses keys over 64 KiB.
_MAX_INDEXED_OCTETS = 1024


def indexable(key: str | None) -> bool:
    """Whether a message id or recipient can key a row: a REJECTED event of an empty or
    absurdly long one is published, but kept out of the tables keyed by it."""
    if not key:
        return False
    return len(key.encode("utf-8", "surrogatepass")) <= _MAX_INDEXED_OCTETS


class Timeline:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def record(self, event: EmailEvent) -> None:
        if not indexable(event.message_id):
            # A request REJECTED message_id_invalid for an empty or absurd id: its event is
            # published all the same, but no timeline can be kept under such a key.
            return
        smtp, bounce = event.smtp, event.bounce
        writes = [
            self._session.execute(
                _EVENT,
                (
                    event.message_id,
                    event.occurred_at,
                    event.event_id,
                    event.tenant_id,
                    event.priority.value,
                    event.recipient,
                    event.type.value,
                    event.attempt,
                    event.reason,
                    smtp.code if smtp else None,
                    smtp.enhanced_code if smtp else None,
                    smtp.text if smtp else None,
                    smtp.mx_host if smtp else None,
                    smtp.tls_version if smtp else None,
                    bounce.kind.value if bounce else None,
                    bounce.category if bounce else None,
                    event.next_attempt_at,
                ),
            )
        ]
        if event.recipient is not None and indexable(event.recipient):
            writes.append(
                self._session.execute(
                    _BY_RECIPIENT,
                    (
                        event.recipient.lower(),
                        event.occurred_at,
                        event.message_id,
                        event.tenant_id,
                        event.type.value,
                    ),
                )
            )
        await asyncio.gather(*writes)
