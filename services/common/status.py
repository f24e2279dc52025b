"""Building the StatusUpdate records every service sends to the event-publisher."""

from __future__ import annotations

from services.common.avro.records import Bounce, DeliveryTask, EventType, SmtpReply, StatusUpdate
from services.common.avro.serde import RecordSerde
from services.common.kafka.records import Output
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from services.common.reasons import Reason


class StatusEmitter:
    def __init__(self, *, serde: RecordSerde, topics: Topics) -> None:
        self._serde = serde
        self._topics = topics

    def output(
        self,
        *,
        message_id: str,
        tenant_id: str,
        priority: Priority,
        type: EventType,
        occurred_at: int,
        recipient: str | None = None,
        attempt: int = 0,
        reason: Reason | None = None,
        smtp: SmtpReply | None = None,
        bounce: Bounce | None = None,
        next_attempt_at: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> Output:
        update = StatusUpdate(
            message_id=message_id,
            tenant_id=tenant_id,
            priority=priority,
            type=type,
            occurred_at=occurred_at,
            attempt=attempt,
            recipient=recipient,
            reason=reason,
            smtp=smtp,
            bounce=bounce,
            next_attempt_at=next_attempt_at,
            tags=tags or {},
        )
        return Output(
            topic=self._topics.status(priority),
            key=message_id.encode(),
            value=self._serde.encode(update),
        )

    def for_task(
        self,
        task: DeliveryTask,
        type: EventType,
        now: int,
        *,
        attempt: int | None = None,
        reason: Reason | None = None,
        smtp: SmtpReply | None = None,
        bounce: Bounce | None = None,
        next_attempt_at: int | None = None,
    ) -> Output:
        """A step in the life of one delivery task; attempt defaults to the task's."""
        return self.output(
            message_id=task.message_id,
            tenant_id=task.tenant_id,
            priority=task.priority,
            type=type,
            occurred_at=now,
            recipient=task.recipient,
            attempt=task.attempt if attempt is None else attempt,
            reason=reason,
            smtp=smtp,
            bounce=bounce,
            next_attempt_at=next_attempt_at,
            tags=task.tags,
        )
