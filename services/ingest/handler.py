"""ingest: decode, validate, deduplicate, check suppression, accept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from services.common.avro.records import AcceptedRequest, EmailEvent, EmailRequested, EventType
from services.common.avro.serde import RecordSerde
from services.common.clock import Clock
from services.common.kafka.records import Inbound, Output
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.priority import Priority
from services.common.reasons import Reason
from services.common.status import StatusEmitter
from services.common.suppressions import SuppressionTable
from services.common.tenants import TenantDirectory
from services.common.timeline import Timeline
from services.ingest.idempotency import Claim, IdempotencyStore
from services.ingest.validation import validate

log = get_logger(__name__)


class IngestHandler:
    def __init__(
        self,
        *,
        priority: Priority,
        serde: RecordSerde,
        topics: Topics,
        status: StatusEmitter,
        tenants: TenantDirectory,
        claims: IdempotencyStore,
        suppressions: SuppressionTable,
        timeline: Timeline,
        clock: Clock,
        max_request_bytes: int,
        allow_test_domains: bool = False,
    ) -> None:
        self._priority = priority
        self._serde = serde
        self._topics = topics
        self._status = status
        self._tenants = tenants
        self._claims = claims
        self._suppressions = suppressions
        self._timeline = timeline
        self._clock = clock
        self._max_request_bytes = max_request_bytes
        self._allow_test_domains = allow_test_domains

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        request = self._serde.decode(EmailRequested, inbound.value)  # InvalidData -> DLQ
        with structlog.contextvars.bound_contextvars(
            message_id=request.message_id,
            tenant_id=request.tenant_id,
            priority=self._priority.value,
        ):
            return await self._ingest(inbound, request)

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        """The request given up on is rejected as a whole: no recipient of it is left without
        an outcome, whichever step failed."""
        request = self._serde.decode(EmailRequested, inbound.value)
        now = self._clock.now_ms()
        return self._publish(
            self._event(request, EventType.REJECTED, now, reason=Reason.INTERNAL_ERROR)
        )

    async def _ingest(self, inbound: Inbound, request: EmailRequested) -> list[Output]:
        now = self._clock.now_ms()
        tenant = await self._tenants.get(request.tenant_id)
        verdict = validate(
            request,
            tenant,
            encoded_size=len(inbound.value),
            max_bytes=self._max_request_bytes,
            allow_test_domains=self._allow_test_domains,
            bulk=self._priority is Priority.BULK,
        )
        if verdict.rejected_reason is not None:
            log.info("request_rejected", reason=verdict.rejected_reason, detail=verdict.detail)
            reason = verdict.rejected_reason
            # Tags refused for what they hold are not echoed on the event that refuses them.
            echo = reason not in (Reason.TAG_INVALID, Reason.TAGS_TOO_MANY)
            return self._publish(
                self._event(request, EventType.REJECTED, now, reason=reason, echo_tags=echo)
            )

        expired = request.expires_at is not None and request.expires_at <= now
        claiming = self._claims.claim(
            tenant_id=request.tenant_id,
            message_id=request.message_id,
            claimed_by=f"{inbound.topic}:{inbound.partition}:{inbound.offset}",
            priority=self._priority.value,
            recipients=verdict.recipients,
            accepted_at=now,
        )
        suppressed: set[str] = set()
        if expired:
            claim = await claiming
        else:
            # The suppression read does not depend on the claim: both at once, one Cassandra
            # round trip less before the message moves (wasted only on a duplicate).
            claim, suppressed = await asyncio.gather(
                claiming,
                self._suppressions.suppressed(
                    request.tenant_id, [r.lower() for r in verdict.recipients], now_ms=now
                ),
            )
        if claim is Claim.DUPLICATE:
            log.info("duplicate_dropped")
            return []

        events = [
            self._event(request, EventType.REJECTED, now, recipient=address, reason=reason)
            for address, reason in verdict.invalid_recipients
        ]
        if expired:
            events += [
                self._event(request, EventType.EXPIRED, now, recipient=r, reason=Reason.EXPIRED)
                for r in verdict.recipients
            ]
            return self._publish(*events)
        deliverable = []
        for recipient in verdict.recipients:
            if recipient.lower() in suppressed:
                events.append(
                    self._event(
                        request,
                        EventType.SUPPRESSED,
                        now,
                        recipient=recipient,
                        reason=Reason.SUPPRESSED,
                    )
                )
            else:
                deliverable.append(recipient)
                events.append(self._event(request, EventType.ACCEPTED, now, recipient=recipient))
        # ACCEPTED is published here and nowhere else (services/common/status.py): its rows
        # are in the timeline before the event is out, so support can always trace it.
        await self._timeline.record_all([e for e in events if e.type is EventType.ACCEPTED])
        outputs = self._publish(*events)
        if deliverable:
            accepted = AcceptedRequest(
                request=request, priority=self._priority, recipients=deliverable, accepted_at=now
            )
            outputs.append(
                Output(
                    topic=self._topics.route(self._priority),
                    key=request.message_id.encode(),
                    value=self._serde.encode(accepted),
                    stage=1,  # after the ACCEPTED events are on their topic
                )
            )
        log.info("request_accepted", recipients=len(deliverable), replay=claim is Claim.REPLAY)
        return outputs

    def _event(
        self,
        request: EmailRequested,
        type: EventType,
        now: int,
        *,
        recipient: str | None = None,
        reason: Reason | None = None,
        echo_tags: bool = True,
    ) -> EmailEvent:
        return self._status.for_request(
            request,
            self._priority,
            type,
            now,
            recipient=recipient,
            reason=reason,
            tags=None if echo_tags else {},
        )

    def _publish(self, *events: EmailEvent) -> list[Output]:
        return [output for event in events for output in self._status.publish(event)]
