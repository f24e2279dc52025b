"""event-publisher: the side effects of a message's events, off their path to email.events.

Each stage publishes its own events (services/common/status.py); what reaches this service
is the status update of every event with a side effect: its timeline rows, then the
suppression policy. A status update without the `mailstream.published` header comes from a
version of a stage that did not publish its events itself (a rolling upgrade): that event is
published here, after its side effects, as before."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.avro.records import StatusUpdate
from services.common.avro.serde import RecordSerde
from services.common.kafka import headers
from services.common.kafka.records import Inbound, Output
from services.common.logging import get_logger
from services.common.status import ROUTINE, StatusEmitter, public_event
from services.common.timeline import Timeline
from services.event_publisher.suppression import SuppressionStore

log = get_logger(__name__)


class EventPublisherHandler:
    def __init__(
        self,
        *,
        serde: RecordSerde,
        status: StatusEmitter,
        timeline: Timeline,
        suppressions: SuppressionStore | None = None,
    ) -> None:
        self._serde = serde
        self._status = status
        self._timeline = timeline
        self._suppressions = suppressions

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        """A step given up on (its timeline or suppression write kept failing): its event is
        out all the same, published by its stage, or here if the stage did not."""
        if _published(inbound):
            return []
        return [self._status.public(public_event(self._serde.decode(StatusUpdate, inbound.value)))]

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        event = public_event(self._serde.decode(StatusUpdate, inbound.value))
        published = _published(inbound)
        # The timeline first: support can trace what the suppression list then says.
        await self._timeline.record(event)
        if self._suppressions is not None:
            await self._suppressions.on_event(event)
        (log.debug if event.type in ROUTINE else log.info)(
            "event_recorded",
            message_id=event.message_id,
            type=event.type.value,
            recipient=event.recipient,
            reason=event.reason,
        )
        return [] if published else [self._status.public(event)]


def _published(inbound: Inbound) -> bool:
    return any(name == headers.PUBLISHED for name, _ in inbound.headers)
