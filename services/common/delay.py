"""Putting a delivery task on a delay topic, and reading when it is due."""

from __future__ import annotations

from services.common.avro.records import DeliveryTask
from services.common.avro.serde import RecordSerde
from services.common.kafka import headers
from services.common.kafka.records import DueAt, Inbound, Output
from services.common.kafka.topics import Topics


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
