"""One request through the whole pipeline against the real Kafka, Cassandra, DNS and SMTP."""

from __future__ import annotations

import uuid
from email import message_from_bytes
from email.policy import default

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EmailEvent, EventType
from services.common.kafka import headers
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for, mailstream


def _types(items: list[EmailEvent], message_id: str) -> list[EventType]:
    return [e.type for e in events_for(items, message_id)]


def test_inline_request_is_accepted_delivered_and_traced(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp, env: dict[str, str]
) -> None:
    mid = f"journey-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="bob@inbox.mailstream.test",
            message_id=mid,
            subject="Hi Bob",
            text_body="hello",
            tags={"flow": "journey"},
        ),
        priority=Priority.CRITICAL,
    )
    items = events.wait_for(
        "ACCEPTED and DELIVERED", lambda xs: EventType.DELIVERED in _types(xs, mid)
    )
    mine = events_for(items, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED]
    delivered = mine[-1]
    assert delivered.recipient == "bob@inbox.mailstream.test"
    assert delivered.priority.value == "CRITICAL"
    assert delivered.smtp is not None and delivered.smtp.code == 250
    assert delivered.smtp.mx_host == "mx.mailstream.test"
    assert delivered.attempt == 1 and delivered.tags == {"flow": "journey"}

    received = [m for m in smtp.messages if b"Subject: Hi Bob" in m.data]
    assert len(received) == 1
    assert received[0].rcpt_tos == ["bob@inbox.mailstream.test"]
    assert received[0].mail_from == "bounces@acme.mailstream.test"
    parsed = message_from_bytes(received[0].data, policy=default)
    assert parsed["From"] == "hello@acme.mailstream.test"
    assert parsed.get_content().strip() == "hello"

    trace = mailstream(env, "trace", mid, check=True).stdout
    assert "ACCEPTED" in trace and "DELIVERED" in trace and "mx=mx.mailstream.test" in trace


def test_a_request_from_an_unverified_domain_is_rejected(
    client: EmailClient, events: TopicCollector
) -> None:
    mid = f"reject-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="boss@other.mailstream.test",
            to="bob@inbox.mailstream.test",
            message_id=mid,
            text_body="x",
        )
    )
    items = events.wait_for("REJECTED", lambda xs: bool(_types(xs, mid)))
    (event,) = events_for(items, mid)
    assert event.type is EventType.REJECTED
    assert event.reason == "sender_not_permitted"
    assert event.recipient is None


def test_undecodable_bytes_go_to_the_dlq_untouched(
    client: EmailClient, dlq: TopicCollector, events: TopicCollector
) -> None:
    garbage = b"not avro " + uuid.uuid4().bytes
    client.publish_raw(garbage, key="garbage", priority=Priority.BULK)
    client.flush()
    items = dlq.wait_for("the dead letter", lambda xs: any(m.value == garbage for m in xs))
    letter = next(m for m in items if m.value == garbage)
    found = dict(letter.headers)
    assert found[headers.ERROR_CLASS] == b"UndecodableRecord"
    assert found[headers.ORIGINAL_TOPIC].endswith(b"email.requested.bulk")
    assert {headers.ORIGINAL_PARTITION, headers.ORIGINAL_OFFSET, headers.ERROR_MESSAGE} <= set(
        found
    )


def test_a_repeated_message_id_is_delivered_once(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = f"dup-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        client.send(
            new_request(
                tenant_id="acme",
                from_address="hello@acme.mailstream.test",
                to="dup@inbox.mailstream.test",
                message_id=mid,
                subject=f"dup {mid}",
                text_body="once",
            )
        )
    events.wait_for("DELIVERED", lambda xs: EventType.DELIVERED in _types(xs, mid))
    # Give the repeats time to be (wrongly) delivered before counting.
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="dup@inbox.mailstream.test",
            message_id=marker,
            text_body="m",
        )
    )
    events.wait_for("marker", lambda xs: EventType.DELIVERED in _types(xs, marker))
    assert _types(events.items, mid).count(EventType.ACCEPTED) == 1
    assert _types(events.items, mid).count(EventType.DELIVERED) == 1
    assert sum(f"dup {mid}".encode() in m.data for m in smtp.messages) == 1


def test_trace_by_recipient_lists_recent_messages(
    client: EmailClient, events: TopicCollector, env: dict[str, str]
) -> None:
    recipient = f"Carol-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    mids = [f"bycarol-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for mid in mids:
        client.send(
            new_request(
                tenant_id="acme",
                from_address="hello@acme.mailstream.test",
                to=recipient,
                message_id=mid,
                text_body="x",
            )
        )
    events.wait_for(
        "both delivered", lambda xs: all(EventType.DELIVERED in _types(xs, mid) for mid in mids)
    )
    out = mailstream(env, "trace", "--recipient", recipient.upper(), check=True).stdout
    for mid in mids:
        assert mid in out
    assert "DELIVERED" in out
