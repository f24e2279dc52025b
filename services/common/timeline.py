"""The per-message timeline, keyed by tenant, its by-recipient index and the message id ->
tenants lookup, read by `mailstream trace`. The one home of these three tables (their TTLs
and compaction: services/common/cassandra/retention.py).

Each fact is written once. Ingest writes the rows of its ACCEPTED events; the event-publisher
those of every other event but DELIVERED, whose fact is the delivery ledger's row
(services/common/deliveries.py): `events` merges it in, and the by-recipient index lists a
message by its ACCEPTED and its other events, and `by_recipient` merges the ledger in too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from services.common.avro.records import EmailEvent, EventType
from services.common.cassandra.session import AsyncSession, cql_from_ms, named_rows
from services.common.deliveries import DeliveryLedger

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
_EVENT_COLUMNS = (
    "occurred_at",
    "tenant_id",
    "priority",
    "recipient",
    "type",
    "attempt",
    "reason",
    "smtp_code",
    "smtp_text",
    "mx_host",
    "next_attempt_at",
)
_EVENTS = (
    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM message_timeline"
    " WHERE tenant_id = ? AND message_id = ?"
)
_TENANTS = "SELECT tenant_id FROM message_tenants WHERE message_id = ?"
_RECIPIENT_TENANTS = (
    "SELECT tenant_id FROM recipient_timeline WHERE recipient = ? GROUP BY recipient, tenant_id"
)
_RECIPIENT_COLUMNS = ("occurred_at", "tenant_id", "message_id", "type")
_RECIPIENT_ROWS = (
    f"SELECT {', '.join(_RECIPIENT_COLUMNS)} FROM recipient_timeline"
    " WHERE recipient = ? AND tenant_id = ? LIMIT ?"
)


# The SMTP reply text a timeline row keeps (email.events carries it whole): with the keys
# bounded below, an event's batch stays far under Cassandra's 50 KiB batch limit.
MAX_SMTP_TEXT = 4000

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
        self._ledger = DeliveryLedger(session=session)

    async def record(self, event: EmailEvent) -> None:
        await self.record_all([event])

    async def record_all(self, events: Sequence[EmailEvent]) -> None:
        """The rows of these events, in one request with the other writes of this moment
        (AsyncSession.write_all)."""
        writes: list[tuple[str, tuple[Any, ...]]] = []
        for event in events:
            for write in _rows(event):
                if write[0] == _TENANT and write in writes:
                    continue  # the message's tenant row, once
                writes.append(write)
        await self._session.write_all(writes)

    async def tenants_of(self, message_id: str) -> list[str]:
        """The tenants that have a timeline for this message id (most often one)."""
        return [r.tenant_id for r in await self._session.execute(_TENANTS, (message_id,))]

    async def events(self, tenant_id: str, message_id: str) -> list[Any]:
        """The message's events, oldest first: the timeline's rows and the ledger's
        deliveries (a DELIVERED row written before the ledger was merged is kept, once)."""
        rows = await self._session.execute(_EVENTS, (tenant_id, message_id))
        delivered = await self._ledger.of_message(tenant_id=tenant_id, message_id=message_id)
        if not delivered:
            return rows
        shown = {r.recipient for r in rows if r.type == EventType.DELIVERED.value}
        priority = {r.recipient: r.priority for r in rows}
        merged = [
            (
                cql_from_ms(d.at_ms),
                tenant_id,
                priority.get(recipient, rows[0].priority if rows else ""),
                recipient,
                EventType.DELIVERED.value,
                d.attempt,
                None,
                d.code,
                d.reply,
                d.mx_host,
                None,
            )
            for recipient, d in delivered
            if recipient not in shown
        ]
        everything = list(rows) + named_rows(_EVENT_COLUMNS, merged)
        everything.sort(key=lambda r: r.occurred_at)
        return everything

    async def by_recipient(self, address: str, tenant_id: str | None, limit: int) -> list[Any]:
        """The newest rows of the address, of one tenant or of every tenant that mailed it."""
        address = address.strip().lower()
        if tenant_id is not None:
            tenants = [tenant_id]
        else:
            rows = await self._session.execute(_RECIPIENT_TENANTS, (address,))
            tenants = [r.tenant_id for r in rows]
        found = [
            row
            for t in tenants
            for row in await self._session.execute(_RECIPIENT_ROWS, (address, t, limit))
        ]
        found += await self._deliveries_to(address, found)
        found.sort(key=lambda r: r.occurred_at, reverse=True)
        return found[:limit]

    async def _deliveries_to(self, address: str, found: list[Any]) -> list[Any]:
        """The DELIVERED rows of the listed messages to the address, from the ledger (the
        index has no DELIVERED rows of its own since the ledger became their record)."""
        messages = {(r.tenant_id, r.message_id) for r in found}
        shown = {(r.tenant_id, r.message_id) for r in found if r.type == "DELIVERED"}
        wanted = sorted(messages - shown)
        ledgers = await asyncio.gather(
            *(self._ledger.of_message(tenant_id=t, message_id=m) for t, m in wanted)
        )
        rows = [
            (cql_from_ms(d.at_ms), t, m, EventType.DELIVERED.value)
            for (t, m), delivered in zip(wanted, ledgers, strict=True)
            for recipient, d in delivered
            if recipient.lower() == address
        ]
        return named_rows(_RECIPIENT_COLUMNS, rows)


def _rows(event: EmailEvent) -> list[tuple[str, tuple[Any, ...]]]:
    """An event's two or three rows (each in its own partition)."""
    # An empty tenant id keys rows well enough (its request was REJECTED tenant_unknown, and
    # support may trace that); an empty or absurd message id cannot: such a request's
    # REJECTED event is published all the same, with no timeline.
    if not indexable(event.message_id) or not _fits(event.tenant_id):
        return []
    smtp, bounce = event.smtp, event.bounce
    tenant, message = event.tenant_id, event.message_id
    writes: list[tuple[str, tuple[Any, ...]]] = [
        (
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
                smtp.text[:MAX_SMTP_TEXT] if smtp else None,
                smtp.mx_host if smtp else None,
                smtp.tls_version if smtp else None,
                bounce.kind.value if bounce else None,
                bounce.category if bounce else None,
                event.next_attempt_at,
            ),
        ),
        (_TENANT, (message, tenant)),
    ]
    if event.recipient is not None and indexable(event.recipient):
        writes.append(
            (
                _BY_RECIPIENT,
                (event.recipient.lower(), tenant, event.occurred_at, message, event.type.value),
            )
        )
    return writes
