"""What a stage says happened to a message: its public EmailEvent, published by the stage
itself, and for every event with a side effect a StatusUpdate to the event-publisher.

The stage that knows what happened publishes the event to `email.events` (deterministic id,
keyed by message id), in the stage of its outputs that comes before anything downstream of
it, so a message's events are on their partition in the order they happened. ACCEPTED and
DELIVERED go no further: the facts they state are already stored (ingest writes the
ACCEPTED rows of the timeline before the event is out, the sender's ledger row holds the
DELIVERED one, and the timeline's reader merges it). Every other event also goes, with a
`mailstream.published` header, to the event-publisher's priority topic, which keeps its timeline
rows and applies the suppression policy."""

from __future__ import annotations

import dataclasses
import uuid

from services.common.avro.records import (
    Bounce,
    DeliveryTask,
    EmailEvent,
    EmailRequested,
    EventType,
    SmtpReply,
    StatusUpdate,
)
from services.common.avro.serde import RecordSerde
from services.common.kafka import headers
from services.common.kafka.records import Output
from services.common.kafka.topics import Topics
from services.common.metrics import EVENTS_PUBLISHED
from services.common.priority import Priority
from services.common.reasons import Reason

# Events whose fact the stage has stored itself: nothing for the event-publisher to do.
ROUTINE = frozenset({EventType.ACCEPTED, EventType.DELIVERED})

_NAMESPACE = uuid.UUID("6f1c3f0e-6a43-4b8e-9a0e-6d61696c7374")

# A status update is the public event without its id: the internal schema carries every
# other field of EmailEvent, by the same name (tests/unit/test_event_publisher.py holds them
# to it), so the conversions need no field list of their own.
_CARRIED = tuple(f.name for f in dataclasses.fields(StatusUpdate))


def event_id(update: StatusUpdate | EmailEvent) -> str:
    """Deterministic: an event published again (a redelivery, a replay) has the same id."""
    parts = (
        update.tenant_id,
        update.message_id,
        update.recipient or "",
        update.type.value,
        str(update.attempt),
    )
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def public_event(update: StatusUpdate) -> EmailEvent:
    return EmailEvent(event_id=event_id(update), **{n: getattr(update, n) for n in _CARRIED})


def status_of(event: EmailEvent) -> StatusUpdate:
    return StatusUpdate(**{n: getattr(event, n) for n in _CARRIED})


class StatusEmitter:
    def __init__(self, *, serde: RecordSerde, topics: Topics) -> None:
        self._serde = serde
        self._topics = topics

    def event(
        self,
        *,
        message_id: str,
        tenant_id: str,
        priority: Priority,
        type: EventType,
        occurred_at: int,
        recipient: str | None = None,
        attempt: int = 0,
        reason: Reason | None = None,
        smtp: SmtpReply | None = None,
        bounce: Bounce | None = None,
        next_attempt_at: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> EmailEvent:
        return public_event(
            StatusUpdate(
                message_id=message_id,
                tenant_id=tenant_id,
                priority=priority,
                type=type,
                occurred_at=occurred_at,
                attempt=attempt,
                recipient=recipient,
                reason=reason,
                smtp=smtp,
                bounce=bounce,
                next_attempt_at=next_attempt_at,
                tags=tags or {},
            )
        )

    def for_request(
        self,
        request: EmailRequested,
        priority: Priority,
        type: EventType,
        now: int,
        *,
        recipient: str | None = None,
        reason: Reason | None = None,
        tags: dict[str, str] | None = None,
    ) -> EmailEvent:
        """An event of a whole request or of one of its recipients; tags default to the
        request's."""
        return self.event(
            message_id=request.message_id,
            tenant_id=request.tenant_id,
            priority=priority,
            type=type,
            occurred_at=now,
            recipient=recipient,
            reason=reason,
            tags=request.tags if tags is None else tags,
        )

    def public(self, event: EmailEvent) -> Output:
        """The event on email.events, counted as published by this process."""
        EVENTS_PUBLISHED.labels(event.type.value, event.priority.value).inc()
        return Output(
            topic=self._topics.events,
            key=event.message_id.encode(),
            value=self._serde.encode(event),
        )

    def publish(self, event: EmailEvent) -> list[Output]:
        """The event on email.events, and unless it is routine, its status update for the
        event-publisher's side effects (marked as published: the publisher must not repeat it)."""
        outputs = [self.public(event)]
        if event.type not in ROUTINE:
            outputs.append(
                Output(
                    topic=self._topics.status(event.priority),
                    key=event.message_id.encode(),
                    value=self._serde.encode(status_of(event)),
                    headers=[(headers.PUBLISHED, b"1")],
                )
            )
        return outputs

    def for_task(
        self,
        task: DeliveryTask,
        type: EventType,
        now: int,
        *,
        attempt: int | None = None,
        reason: Reason | None = None,
        smtp: SmtpReply | None = None,
        bounce: Bounce | None = None,
        next_attempt_at: int | None = None,
    ) -> list[Output]:
        """A step in the life of one delivery task; attempt defaults to the task's."""
        return self.publish(
            self.event(
                message_id=task.message_id,
                tenant_id=task.tenant_id,
                priority=task.priority,
                type=type,
                occurred_at=now,
                recipient=task.recipient,
                attempt=task.attempt if attempt is None else attempt,
                reason=reason,
                smtp=smtp,
                bounce=bounce,
                next_attempt_at=next_attempt_at,
                tags=task.tags,
            )
        )
