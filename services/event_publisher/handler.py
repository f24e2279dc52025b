"""event-publisher: status updates become public EmailEvents, the timeline and suppressions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from services.common.avro.records import EmailEvent, EventType, StatusUpdate
from services.common.avro.serde import RecordSerde
from services.common.kafka.records import Inbound, Output
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.metrics import EVENTS_PUBLISHED
from services.common.timeline import Timeline
from services.event_publisher.event_id import event_id
from services.event_publisher.suppression import SuppressionStore

log = get_logger(__name__)
_ROUTINE = frozenset({EventType.ACCEPTED, EventType.DELIVERED})


class EventPublisherHandler:
    def __init__(
        self,
        *,
        serde: RecordSerde,
        topics: Topics,
        timeline: Timeline,
        suppressions: SuppressionStore | None = None,
    ) -> None:
        self._serde = serde
        self._topics = topics
        self._timeline = timeline
        self._suppressions = suppressions

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        """A step given up on (its timeline or suppression write kept failing) is published
        all the same: the public event is the outcome its reader waits for."""
        return [self._output(_event(self._serde.decode(StatusUpdate, inbound.value)))]

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        event = _event(self._serde.decode(StatusUpdate, inbound.value))
        # The timeline first: once the public event is out, support can always trace it.
        await self._timeline.record(event)
        # Then the suppression list, before the event is out: a crash in between replays both.
        if self._suppressions is not None:
            await self._suppressions.on_event(event)
        EVENTS_PUBLISHED.labels(event.type.value, event.priority.value).inc()
        # Every event is on email.events and in the timeline; the log keeps the exceptions
        # at info, and the happy path (two events per message) at debug: rendering those
        # lines was 5% of the event-publisher's CPU.
        emit = log.debug if event.type in _ROUTINE else log.info
        emit(
            "event_published",
            message_id=event.message_id,
            type=event.type.value,
            recipient=event.recipient,
            reason=event.reason,
        )
        return [self._output(event)]

    def _output(self, event: EmailEvent) -> Output:
        return Output(
            topic=self._topics.events,
            key=event.message_id.encode(),
            value=self._serde.encode(event),
        )


# A status update is the public event without its id: the internal schema carries every
# other field of EmailEvent, by the same name (tests/unit/test_event_publisher.py holds them
# to it), so the one conversion needs no field list of its own.
_CARRIED = tuple(f.name for f in dataclasses.fields(StatusUpdate))


def _event(update: StatusUpdate) -> EmailEvent:
    return EmailEvent(event_id=event_id(update), **{n: getattr(update, n) for n in _CARRIED})
