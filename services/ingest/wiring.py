"""Composition root of ingest: one lane per priority, so bulk backlog never delays critical."""

from __future__ import annotations

from services.common.kafka.runner import Lane
from services.common.kernel import Kernel
from services.common.priority import PRIORITIES
from services.common.suppressions import SuppressionTable
from services.common.tenants import TenantDirectory
from services.common.timeline import Timeline
from services.ingest.config import IngestSettings
from services.ingest.handler import IngestHandler
from services.ingest.idempotency import IdempotencyStore


def build_lanes(kernel: Kernel) -> list[Lane]:
    settings = kernel.settings
    assert isinstance(settings, IngestSettings)
    tenants = TenantDirectory(session=kernel.cassandra, ttl_s=settings.ingest.tenant_cache_s)
    claims = IdempotencyStore(session=kernel.cassandra)
    suppressions = SuppressionTable(session=kernel.cassandra)
    timeline = Timeline(session=kernel.cassandra)
    lanes = []
    for priority in PRIORITIES:
        handler = IngestHandler(
            priority=priority,
            serde=kernel.serde,
            topics=kernel.topics,
            status=kernel.status,
            tenants=tenants,
            claims=claims,
            suppressions=suppressions,
            timeline=timeline,
            clock=kernel.clock,
            max_request_bytes=settings.max_request_bytes,
            allow_test_domains=settings.ingest.allow_test_domains,
        )
        lanes.append(
            Lane(
                name=f"ingest-{priority.slug}",
                group_id=f"{kernel.topics.prefix}mailstream-ingest-{priority.slug}",
                topics=[kernel.topics.requested(priority)],
                handler=handler,
                dlq_topic=kernel.topics.requests_dlq,
                on_quarantine=handler.quarantined,
                quarantine_topic=kernel.topics.internal_dlq,
                max_in_flight=settings.kafka.lane_window(priority),
                priority=priority,
            )
        )
    return lanes
