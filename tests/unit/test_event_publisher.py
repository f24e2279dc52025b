"""A status update becomes the public event field for field, with its deterministic id; each
stage publishes its events, and the event-publisher does what an event makes happen."""

import dataclasses
import typing

import pytest

from services.common.avro.codec import AvroCodec
from services.common.avro.records import (
    Bounce,
    BounceKind,
    EmailEvent,
    EventType,
    SmtpReply,
    StatusUpdate,
)
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.config import REPO_ROOT
from services.common.kafka import headers
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from services.common.status import StatusEmitter, event_id, public_event, status_of
from services.event_publisher.handler import EventPublisherHandler

_event = public_event


def test_the_status_update_carries_every_field_of_the_event_but_its_id() -> None:
    event = typing.get_type_hints(EmailEvent)
    update = typing.get_type_hints(StatusUpdate)
    del event["event_id"]
    assert event == update


def test_every_field_reaches_the_event() -> None:
    update = StatusUpdate(
        message_id="m-1",
        tenant_id="acme",
        priority=Priority.BULK,
        type=EventType.BOUNCED,
        occurred_at=1_700_000_000_123,
        attempt=3,
        recipient="a@example.com",
        reason="mailbox_unknown",
        smtp=SmtpReply(code=550, text="5.1.1 no such user", enhanced_code="5.1.1"),
        bounce=Bounce(kind=BounceKind.HARD, category="mailbox_unknown"),
        next_attempt_at=None,
        tags={"campaign": "spring"},
    )
    event = _event(update)
    assert event.event_id == event_id(update)
    for field in dataclasses.fields(StatusUpdate):
        assert getattr(event, field.name) == getattr(update, field.name), field.name


# Each stage publishes its own events; the event-publisher keeps the side effects.

SERDE = RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=REPO_ROOT / "schemas")))
TOPICS = Topics("", (1, 2))


def _emitted(type: EventType, priority: Priority = Priority.CRITICAL) -> EmailEvent:
    return StatusEmitter(serde=SERDE, topics=TOPICS).event(
        message_id="m-1",
        tenant_id="acme",
        priority=priority,
        type=type,
        occurred_at=1_700_000_000_000,
        recipient="a@example.com",
        attempt=1,
    )


@pytest.mark.parametrize("type", [EventType.ACCEPTED, EventType.DELIVERED])
def test_a_routine_event_goes_to_email_events_only(type: EventType) -> None:
    event = _emitted(type)
    (only,) = StatusEmitter(serde=SERDE, topics=TOPICS).publish(event)
    assert only.topic == TOPICS.events and only.key == b"m-1" and only.stage == 0
    assert SERDE.decode(EmailEvent, only.value) == event


@pytest.mark.parametrize(
    "type", [t for t in EventType if t not in (EventType.ACCEPTED, EventType.DELIVERED)]
)
def test_every_other_event_also_reaches_the_event_publisher_marked_as_published(
    type: EventType,
) -> None:
    event = _emitted(type, Priority.BULK)
    public, status = StatusEmitter(serde=SERDE, topics=TOPICS).publish(event)
    assert public.topic == TOPICS.events and SERDE.decode(EmailEvent, public.value) == event
    assert status.topic == TOPICS.status(Priority.BULK) and status.key == b"m-1"
    assert status.headers == [(headers.PUBLISHED, b"1")]
    assert public_event(SERDE.decode(StatusUpdate, status.value)) == event


class _Timeline:
    def __init__(self) -> None:
        self.recorded: list[EmailEvent] = []

    async def record(self, event: EmailEvent) -> None:
        self.recorded.append(event)


def _inbound(value: bytes, hdrs: list[tuple[str, bytes]]) -> Inbound:
    return Inbound(
        topic="status", partition=0, offset=0, key=b"m-1", value=value, timestamp_ms=0,
        headers=hdrs,
    )  # fmt: skip


async def test_a_published_event_gets_its_timeline_and_is_not_published_again() -> None:
    timeline = _Timeline()
    handler = EventPublisherHandler(
        serde=SERDE, status=StatusEmitter(serde=SERDE, topics=TOPICS), timeline=timeline
    )  # type: ignore[arg-type]
    event = _emitted(EventType.BOUNCED)
    (_, status) = StatusEmitter(serde=SERDE, topics=TOPICS).publish(event)
    assert await handler(_inbound(status.value, status.headers or [])) == []
    assert timeline.recorded == [event]
    assert (
        await handler.quarantined(_inbound(status.value, status.headers or []), ValueError()) == []
    )


@pytest.mark.parametrize("type", [EventType.DELIVERED, EventType.DEFERRED])
async def test_a_status_of_an_older_stage_is_published_here_as_before(type: EventType) -> None:
    timeline = _Timeline()
    handler = EventPublisherHandler(
        serde=SERDE, status=StatusEmitter(serde=SERDE, topics=TOPICS), timeline=timeline
    )  # type: ignore[arg-type]
    event = _emitted(type)
    value = SERDE.encode(status_of(event))
    (out,) = await handler(_inbound(value, []))
    assert out.topic == TOPICS.events and SERDE.decode(EmailEvent, out.value) == event
    assert timeline.recorded == [event]
    (again,) = await handler.quarantined(_inbound(value, []), ValueError())
    assert SERDE.decode(EmailEvent, again.value) == event
