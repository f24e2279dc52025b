"""A status update becomes the public event field for field, with its deterministic id."""

import dataclasses
import typing

from services.common.avro.records import (
    Bounce,
    BounceKind,
    EmailEvent,
    EventType,
    SmtpReply,
    StatusUpdate,
)
from services.common.priority import Priority
from services.event_publisher.event_id import event_id
from services.event_publisher.handler import _event


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
