"""Priority holds after the first attempt too: with 20,000 bulk retries due and 20,000 bulk
status records queued for the event-publisher, a critical message deferred once is delivered
on its retry, and its DEFERRED step is in its timeline, long before either bulk backlog
drains. Retries and status records of each priority travel on topics and lanes of their own.
The status records are of an older version's kind (not published by their stage), so the
event-publisher publishes each on email.events: how many it got through shows how far it
went into the bulk backlog."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from services.client import EmailClient, Priority
from services.common.avro.records import DeliveryTask, EventType
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.delay import delayed_output
from services.common.kafka.records import Output
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics
from services.common.status import StatusEmitter, status_of
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
    events_for,
    mailstream,
    send_message,
)

BACKLOG = 20_000


def _produce(settings: CommonSettings, outputs: list[Output]) -> None:
    producer = Producer(producer_config(settings.kafka))
    for i, out in enumerate(outputs):
        producer.produce(out.topic, key=out.key, value=out.value, headers=out.headers)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


@pytest.mark.leaves_backlog
def test_a_critical_retry_and_its_events_overtake_bulk_retries_and_bulk_events(
    settings: CommonSettings,
    topics: Topics,
    serde: RecordSerde,
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
) -> None:
    run = uuid.uuid4().hex[:8]
    now = time.time_ns() // 1_000_000
    retries = [
        delayed_output(
            task=DeliveryTask(
                message_id=f"bulkretry-{run}-{i}",
                tenant_id="acme",
                priority=Priority.BULK,
                recipient=f"reader{i % 500}@inbox.mailstream.test",
                mail_from="bounces@acme.mailstream.test",
                mx_hosts=[],
                mime=(
                    b"From: hello@acme.mailstream.test\r\nTo: reader@inbox.mailstream.test\r\n"
                    b"Subject: bulkretry-" + run.encode() + b"\r\n\r\nnewsletter\r\n"
                ),
                sender_domain="acme.mailstream.test",
                attempt=1,
                accepted_at=now,
            ),
            tier_s=settings.delay_tiers_s[0],
            due_ms=now,
            topics=topics,
            serde=serde,
        )
        for i in range(BACKLOG)
    ]
    emitter = StatusEmitter(serde=serde, topics=topics)
    statuses = [
        Output(
            topic=topics.status(Priority.BULK),
            key=event.message_id.encode(),
            value=serde.encode(status_of(event)),
        )
        for event in (
            emitter.event(
                message_id=f"bulkstatus-{run}-{i}",
                tenant_id="acme",
                priority=Priority.BULK,
                type=EventType.DEFERRED,
                occurred_at=now,
                recipient=f"reader{i % 500}@inbox.mailstream.test",
                attempt=1,
                reason="test_backlog",
            )
            for i in range(BACKLOG)
        )
    ]
    _produce(settings, retries + statuses)
    backlog_at = time.monotonic()

    otp = f"otp-{run}@inbox.mailstream.test"
    smtp.script_rcpt(otp, ["451 4.7.1 greylisted, try again later"])
    mid = send_message(client, otp, priority=Priority.CRITICAL)
    mine = events.wait_for(
        "the critical message delivered on its retry",
        lambda xs: any(e.type is EventType.DELIVERED for e in events_for(xs, mid)),
        timeout=120,
    )
    # Its DEFERRED step reached its timeline through the event-publisher's critical lane.
    traced = mailstream(env, "trace", mid, "--tenant", "acme", "--wait-for", "deferred",
                        "--timeout", "30")  # fmt: skip
    done_at = time.monotonic()
    assert traced.returncode == 0, traced.stdout + traced.stderr
    items = events.items
    bulk_events = sum(1 for e in items if e.message_id.startswith(f"bulkstatus-{run}-"))
    bulk_sent = sum(1 for m in smtp.messages if f"bulkretry-{run}".encode() in m.data)
    steps = events_for(mine, mid)
    deferred = [e for e in steps if e.type is EventType.DEFERRED]
    delivered = [e for e in steps if e.type is EventType.DELIVERED]
    assert len(deferred) == 1 and len(delivered) == 1
    retry_latency = (delivered[0].occurred_at - (deferred[0].next_attempt_at or 0)) / 1000
    with capsys.disabled():
        print(
            f"\npriority after the first attempt: critical deferred once and delivered "
            f"{done_at - backlog_at:.1f}s after {BACKLOG} bulk retries and {BACKLOG} bulk status "
            f"records were queued; retry due -> 250 {retry_latency:.2f}s; meanwhile bulk retries "
            f"sent={bulk_sent}, bulk events published={bulk_events}"
        )
    # Latency targets are measured by bench/; this checks that neither backlog came first.
    assert bulk_sent < BACKLOG * 0.5, "the critical retry waited for the bulk retries"
    assert bulk_events < BACKLOG * 0.5, "the critical timeline waited for the bulk statuses"
