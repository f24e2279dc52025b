"""The per-message timeline, keyed by tenant, and its by-recipient index in Cassandra."""

from __future__ import annotations

import asyncio

from services.common.avro.records import EmailEvent
from services.common.cassandra.session import AsyncSession

# TTLs and compaction of these tables: services/common/cassandra/retention.py.
_EVENT = (
    "INSERT INTO message_timeline (tenant_id, message_id, occurred_at, event_id, priority,"
    " recipient, type, attempt, reason, smtp_code, smtp_enhanced, smtp_text, mx_host,"
    " tls_version, bounce_kind, bounce_category, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Rewritten by every event of the message, so it lasts as long as the message's last event.
_TENANT = "INSERT INTO message_tenants (message_id, tenant_id) VALUES (?, ?)"
_BY_RECIPIENT = (
    "INSERT INTO recipient_timeline (recipient, tenant_id, occurred_at, message_id, type)"
    " VALUES (?, ?, ?, ?, ?)"
)


# Longer than any valid address (RFC 5321 allows 254 octets); Cassandra refuses keys over 64 KiB.
_MAX_INDEXED_OCTETS = 1024


def _fits(key: str) -> bool:
    return len(key.encode("utf-8", "surrogatepass")) <= _MAX_INDEXED_OCTETS


def indexable(key: str | None) -> bool:
    """Whether a message id or recipient can key a row: a REJECTED event of an empty or
    absurdly long one is published, but kept out of the tables keyed by it."""
    if not key:
        return False
    return _fits(key)


class Timeline:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def record(self, event: EmailEvent) -> None:
        # An empty tenant id keys rows well enough (its request was REJECTED tenant_unknown,
        # and support may trace that); an empty or absurd message id cannot: such a request's
        # REJECTED event is published all the same, with no timeline.
        if not indexable(event.message_id) or not _fits(event.tenant_id):
            return
        smtp, bounce = event.smtp, event.bounce
        tenant, message = event.tenant_id, event.message_id
        writes = [
            self._session.execute(
                _EVENT,
                (
                    tenant,
                    message,
                    event.occurred_at,
                    event.event_id,
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
            ),
            self._session.execute(_TENANT, (message, tenant)),
        ]
        if event.recipient is not None and indexable(event.recipient):
            writes.append(
                self._session.execute(
                    _BY_RECIPIENT,
                    (event.recipient.lower(), tenant, event.occurred_at, message, event.type.value),
                )
            )
        await asyncio.gather(*writes)
