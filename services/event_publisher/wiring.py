"""Composition root of the event-publisher."""

from __future__ import annotations

from services.common.kafka.runner import Lane
from services.common.kernel import Kernel
from services.common.priority import PRIORITIES, Priority
from services.common.timeline import Timeline
from services.event_publisher.config import EventPublisherSettings
from services.event_publisher.handler import EventPublisherHandler
from services.event_publisher.suppression import SuppressionStore


def build_lanes(kernel: Kernel) -> list[Lane]:
    settings = kernel.settings
    assert isinstance(settings, EventPublisherSettings)
    handler = EventPublisherHandler(
        serde=kernel.serde,
        status=kernel.status,
        timeline=Timeline(session=kernel.cassandra),
        suppressions=SuppressionStore(session=kernel.cassandra, settings=settings.suppression),
    )
    topics = kernel.topics

    def lane(name: str, group: str, topic: str, priority: Priority | None) -> Lane:
        return Lane(
            name=name,
            group_id=f"{topics.prefix}{group}",
            topics=[topic],
            handler=handler,
            dlq_topic=topics.internal_dlq,
            on_quarantine=handler.quarantined,
            # A message's events reach email.events in the order they were reported.
            key_ordered=True,
            max_in_flight=settings.kafka.lane_window(priority) if priority else None,
            priority=priority,
        )

    lanes = [
        lane(f"event-publisher-{p.slug}", f"mailstream-events-{p.slug}", topics.status(p), p)
        for p in PRIORITIES
    ]
    lanes.append(lane("event-publisher-legacy", "mailstream-events", topics.legacy_status, None))
    return lanes
