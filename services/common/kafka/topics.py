"""Every topic name mailstream uses, and how each is provisioned. Names live only here."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import DELAY_TIERS_S, KafkaSettings
from services.common.priority import PRIORITIES, Priority


def delay_tier_name(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    prefix: str = ""
    delay_tiers_s: tuple[int, ...] = DELAY_TIERS_S

    def requested(self, priority: Priority) -> str:
        return f"{self.prefix}email.requested.{priority.slug}"

    @property
    def events(self) -> str:
        return f"{self.prefix}email.events"

    @property
    def requests_dlq(self) -> str:
        return f"{self.prefix}email.requested.dlq"

    @property
    def internal_dlq(self) -> str:
        return f"{self.prefix}mailstream.internal.dlq"

    def route(self, priority: Priority) -> str:
        """ingest -> router: accepted requests."""
        return f"{self.prefix}mailstream.route.{priority.slug}"

    def deliver(self, priority: Priority) -> str:
        """router -> sender: one delivery task per recipient."""
        return f"{self.prefix}mailstream.deliver.{priority.slug}"

    def status(self, priority: Priority) -> str:
        """every service -> event-publisher: steps that become public events. One topic per
        priority, so a bulk backlog of events never delays a critical message's."""
        return f"{self.prefix}mailstream.status.{priority.slug}"

    def delay(self, tier_s: int, priority: Priority) -> str:
        """Tasks waiting for a retry or a send_at; consumed with partitions paused until due.
        One set of tiers per priority: critical retries never queue behind bulk ones."""
        return f"{self.prefix}mailstream.delay.{priority.slug}.{delay_tier_name(tier_s)}"

    def delays(self, priority: Priority) -> list[str]:
        return [self.delay(t, priority) for t in self.delay_tiers_s]

    # The topics of releases before the per-priority paths, which carried every priority.
    # Still provisioned and drained (each service runs a lane over them), so an upgrade loses
    # nothing that was waiting there; nothing is written to them any more.
    @property
    def legacy_status(self) -> str:
        return f"{self.prefix}mailstream.status"

    @property
    def legacy_delays(self) -> list[str]:
        return [f"{self.prefix}mailstream.delay.{delay_tier_name(t)}" for t in self.delay_tiers_s]

    def delay_tier_of(self, topic: str) -> int:
        for i, tier in enumerate(self.delay_tiers_s):
            if topic == self.legacy_delays[i] or any(
                self.delay(tier, p) == topic for p in PRIORITIES
            ):
                return tier
        raise KeyError(topic)

    def specs(self, settings: KafkaSettings) -> list[TopicSpec]:
        n = settings.partitions
        requests = {"retention.ms": str(settings.requests_retention_ms)}
        internal = {"retention.ms": str(settings.requests_retention_ms)}
        # Records that carry a built message (quoted-printable and base64 grow a 900 KiB
        # request to well over the broker's 1 MiB default) get room for the largest one.
        carrying_mime = internal | {"max.message.bytes": str(settings.max_record_bytes)}
        specs = [TopicSpec(self.requested(p), n, requests) for p in PRIORITIES]
        specs += [TopicSpec(self.route(p), n, internal) for p in PRIORITIES]
        specs += [TopicSpec(self.deliver(p), n, carrying_mime) for p in PRIORITIES]
        specs += [TopicSpec(t, n, carrying_mime) for p in PRIORITIES for t in self.delays(p)]
        specs += [TopicSpec(t, n, carrying_mime) for t in self.legacy_delays]
        specs += [TopicSpec(self.status(p), n, internal) for p in PRIORITIES]
        specs += [
            TopicSpec(self.legacy_status, n, internal),
            TopicSpec(self.events, n, {"retention.ms": str(settings.events_retention_ms)}),
            TopicSpec(self.requests_dlq, 1, requests),
            TopicSpec(self.internal_dlq, 1, carrying_mime),
        ]
        return specs
