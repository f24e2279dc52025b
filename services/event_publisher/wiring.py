"""Composition root of the event-publisher."""

from __future__ import annotations

from services.common.kafka.runner import Lane
from services.common.kernel import Kernel
from services.event_publisher.config import EventPublisherSettings
from services.event_publisher.handler import EventPublisherHandler
from services.event_publisher.suppression import SuppressionStore
from services.event_publisher.timeline import Timeline


def build_lanes(kernel: Kernel) -> list[Lane]:
    settings = kernel.settings
    assert isinstance(settings, EventPublisherSettings)
    handler = EventPublisherHandler(
        serde=kernel.serde,
        topics=kernel.topics,
        timeline=Timeline(session=kernel.cassandra),
        suppressions=SuppressionStore(session=kernel.cassandra, settings=settings.suppression),
    )
    return [
        Lane(
            name="event-publisher",
            group_id=f"{kernel.topics.prefix}mailstream-events",
            topics=[kernel.topics.status],
            handler=handler,
            dlq_topic=kernel.topics.internal_dlq,
            on_quarantine=handler.quarantined,
            # A message's events reach email.events in the order they were reported.
            key_ordered=True,
        )
    ]
