"""A temporary failure goes to a delay topic, is held there until due, and is retried."""

from __future__ import annotations

import time
import uuid

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for


def test_451_is_deferred_then_delivered_after_the_delay(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    recipient = f"retry-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    smtp.script_rcpt(recipient, ["451 4.7.1 Greylisted, try again later"])
    mid = f"retry-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to=recipient,
            message_id=mid,
            subject="retry",
            text_body="x",
        ),
        priority=Priority.TRANSACTIONAL,
    )
    items = events.wait_for(
        "DELIVERED after a retry",
        lambda xs: EventType.DELIVERED in [e.type for e in events_for(xs, mid)],
        timeout=60,
    )
    mine = events_for(items, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DEFERRED, EventType.DELIVERED]
    deferred, delivered = mine[1], mine[2]
    assert deferred.reason == "greylisted" and deferred.attempt == 1
    assert deferred.smtp is not None and deferred.smtp.code == 451
    assert deferred.smtp.enhanced_code == "4.7.1"
    # The test stack's first delay tier is 1 s: the retry waited for it, no longer than needed.
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at - deferred.occurred_at == 1000
    (first, _), (second, reply) = smtp.rcpt_replies(recipient)
    assert second - first >= 1.0, "retried before it was due"
    assert second - first < 10.0, "held far longer than its tier"
    assert reply.startswith("250")
    assert delivered.attempt == 2 and delivered.smtp is not None and delivered.smtp.code == 250


def test_a_try_again_in_n_seconds_hint_is_honoured(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    recipient = f"hint-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    smtp.script_rcpt(recipient, ["450 4.2.1 Rate limited, try again in 3 seconds"])
    mid = f"hint-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to=recipient,
            message_id=mid,
            subject="hint",
            text_body="x",
        )
    )
    items = events.wait_for(
        "DELIVERED after the hinted wait",
        lambda xs: EventType.DELIVERED in [e.type for e in events_for(xs, mid)],
        timeout=60,
    )
    deferred = next(e for e in events_for(items, mid) if e.type is EventType.DEFERRED)
    assert deferred.next_attempt_at is not None
    # The test tiers are 1, 2 and 4 s: a 3 s hint moves the retry to the 4 s tier.
    assert deferred.next_attempt_at - deferred.occurred_at == 4000
    (first, _), (second, _) = smtp.rcpt_replies(recipient)
    assert second - first >= 3.0


def test_send_at_in_the_future_is_held_until_due(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = f"later-{uuid.uuid4().hex[:8]}"
    send_at = time.time_ns() // 1_000_000 + 3_000
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="later@inbox.mailstream.test",
            message_id=mid,
            subject=f"later {mid}",
            text_body="x",
            send_at=send_at,
        )
    )
    events.wait_for(
        "DELIVERED",
        lambda xs: EventType.DELIVERED in [e.type for e in events_for(xs, mid)],
        timeout=60,
    )
    arrived = next(m.at for m in smtp.messages if f"later {mid}".encode() in m.data)
    assert arrived * 1000 >= send_at, "delivered before send_at"
    assert arrived * 1000 - send_at < 6_000, "held far longer than needed"
