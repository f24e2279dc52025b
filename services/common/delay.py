"""Putting a delivery task on a delay topic, and reading when it is due; what an attempt
that failed for now produces, in the router (a DNS or routing step) as in the sender."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from services.common.avro.records import DeliveryTask, EventType, SmtpReply
from services.common.avro.serde import RecordSerde
from services.common.kafka import headers
from services.common.kafka.records import DueAt, Inbound, Output
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.reasons import Reason
from services.common.schedule import RetryPolicy, expiry_reason, next_attempt
from services.common.status import StatusEmitter

log = get_logger(__name__)


def delayed_output(
    *, task: DeliveryTask, tier_s: int, due_ms: int, topics: Topics, serde: RecordSerde
) -> Output:
    return Output(
        topic=topics.delay(tier_s, task.priority),
        key=task.message_id.encode(),
        value=serde.encode(task),
        headers=[(headers.DUE_AT, str(due_ms).encode())],
        stage=1,  # after the DEFERRED event that announces it
    )


@dataclass(frozen=True, kw_only=True)
class Retries:
    """The retry schedule applied: one home for both stages that try and may fail for now."""

    policy: RetryPolicy
    status: StatusEmitter
    topics: Topics
    serde: RecordSerde

    def failed(
        self,
        task: DeliveryTask,
        now: int,
        *,
        reason: Reason,
        smtp: SmtpReply | None = None,
        retry_after_s: int | None = None,
    ) -> list[Output]:
        """The task's next attempt failed for now: DEFERRED, then the task on the delay topic
        of its next attempt's tier; or EXPIRED when that attempt would come too late. Each
        attempt, SMTP or routing, advances the count, so each DEFERRED has its own event id."""
        number = task.attempt + 1
        nxt = next_attempt(
            self.policy,
            priority=task.priority,
            attempt=number,
            accepted_at=task.accepted_at,
            expires_at=task.expires_at,
            send_at=task.send_at,
            now_ms=now,
            retry_after_s=retry_after_s,
        )
        if nxt is None:
            log.info("expired_after_deferral", attempt=number, reason=reason)
            return self.status.for_task(
                task,
                EventType.EXPIRED,
                now,
                attempt=number,
                smtp=smtp,
                reason=expiry_reason(task, self.policy),
            )
        log.info("delivery_deferred", attempt=number, reason=reason, next_attempt_at=nxt.due_ms)
        retry = dataclasses.replace(task, attempt=number, not_before=nxt.due_ms, mx_hosts=[])
        return [
            *self.status.for_task(
                task,
                EventType.DEFERRED,
                now,
                attempt=number,
                smtp=smtp,
                reason=reason,
                next_attempt_at=nxt.due_ms,
            ),
            delayed_output(
                task=retry,
                tier_s=nxt.tier_s,
                due_ms=nxt.due_ms,
                topics=self.topics,
                serde=self.serde,
            ),
        ]


def true_due(inbound: Inbound) -> int:
    for name, value in inbound.headers:
        if name == headers.DUE_AT:
            return int(value)
    return 0


def make_due_at(topics: Topics) -> DueAt:
    """The delay lane's due_at: a record waits until its due time but never longer than its
    tier, so each delay partition's heads come due in order and one far-off send_at does not
    block the records behind it (it is moved on to the right tier when its tier time comes)."""

    def due_at(inbound: Inbound) -> int:
        tier_ms = topics.delay_tier_of(inbound.topic) * 1000
        return min(true_due(inbound), inbound.timestamp_ms + tier_ms)

    return due_at
