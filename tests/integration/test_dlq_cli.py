"""`mailstream dlq list|replay` against the real stack: an undecodable record is listed with
where it came from and why; a dead letter that decodes after a fix is replayed and
delivered; replaying it again delivers nothing twice."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer

from services.common.avro.records import (
    AcceptedRequest,
    Attachment,
    EmailRequested,
    EventType,
    Recipient,
)
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.kafka import headers
from services.common.kafka.records import Inbound
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from tests.integration.harness import (
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    events_for,
    mailstream,
    until_terminal,
    wait_until,
)


def _offset_of(letters: list[Inbound], marker: bytes) -> str:
    letter = next(d for d in letters if marker in d.value)
    return f"{letter.partition}:{letter.offset}"


def test_dead_letters_are_listed_and_replayed_once(
    env: dict[str, str],
    settings: CommonSettings,
    topics: Topics,
    serde: RecordSerde,
    services: dict[str, ServiceProcess],
    events: TopicCollector,
    dlq: TopicCollector,
    smtp: RecordingSmtp,
) -> None:
    run = uuid.uuid4().hex[:8]
    producer = Producer(producer_config(settings.kafka))
    source = topics.requested(Priority.TRANSACTIONAL)
    garbage = f"not avro {run}".encode()
    producer.produce(source, value=garbage, key=b"garbage")
    # A dead letter as ingest would have written it for a request it could not decode then
    # and can now (a schema version deployed late, say): its bytes are a valid request.
    mid = f"dlq-{run}"
    fixed = serde.encode(
        EmailRequested(
            message_id=mid,
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to=[Recipient("dlq@inbox.mailstream.test")],
            subject=f"replayed {mid}",
            text_body="x",
            requested_at=0,
        )
    )
    producer.produce(
        topics.requests_dlq,
        value=fixed,
        key=mid.encode(),
        headers=[
            (headers.ERROR_CLASS, b"UndecodableRecord"),
            (headers.ERROR_MESSAGE, b"unknown schema fingerprint (simulated)"),
            (headers.ORIGINAL_TOPIC, source.encode()),
            (headers.ORIGINAL_PARTITION, b"0"),
            (headers.ORIGINAL_OFFSET, b"0"),
        ],
    )
    assert producer.flush(30) == 0
    dlq.wait_for("the garbage's dead letter", lambda xs: any(garbage == d.value for d in xs))

    listed = mailstream(env, "dlq", "list", "--limit", "100000")
    assert listed.returncode == 0, listed.stderr
    # Other tests in the session dead-letter garbage too: find this test's letter by its offset.
    where = _offset_of(dlq.items, garbage)
    line = next(row for row in listed.stdout.splitlines() if row.split()[:1] == [where])
    assert f"{source}:" in line and "not Avro" in line
    assert "UndecodableRecord" in line and str(len(garbage)) in line
    assert "dead letters in" in listed.stdout.splitlines()[-1]

    offset = _offset_of(dlq.items, mid.encode())
    dry = mailstream(env, "dlq", "replay", "--offset", offset, "--dry-run")
    assert dry.returncode == 0 and "would replay" in dry.stdout, dry.stderr
    replayed = mailstream(env, "dlq", "replay", "--offset", offset)
    assert replayed.returncode == 0, replayed.stderr
    mine = until_terminal(events, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED]

    # Twice replayed: ingest's idempotency drops the repeat, no second delivery.
    again = mailstream(env, "dlq", "replay", "--offset", offset)
    assert again.returncode == 0, again.stderr
    ingest = services["services.ingest"]
    wait_until(
        "ingest to drop the repeat",
        lambda: any(
            '"duplicate_dropped"' in line and mid in line for line in ingest.log_text().splitlines()
        ),
        30,
    )
    garbage_at = _offset_of(dlq.items, garbage)
    mailstream(env, "dlq", "replay", "--offset", garbage_at, check=True)
    # The garbage comes back as a second dead letter, marked as a replay.
    dlq.wait_for(
        "the replayed garbage's dead letter",
        lambda xs: sum(garbage == d.value for d in xs) == 2,
    )
    second = [d for d in dlq.items if d.value == garbage][-1]
    assert dict(second.headers)[headers.REPLAYED_FROM].decode().endswith(garbage_at)
    assert len(events_for(events.items, mid)) == 2
    assert sum(f"replayed {mid}".encode() in m.data for m in smtp.messages) == 1

    bad = mailstream(env, "dlq", "replay", "--offset", "0:999999999")
    assert bad.returncode == 2 and "no dead letter" in bad.stderr
    usage = mailstream(env, "dlq", "replay")
    assert usage.returncode == 2 and "--offset" in usage.stderr


def test_a_record_the_router_cannot_build_is_quarantined_and_the_lane_goes_on(
    env: dict[str, str],
    settings: CommonSettings,
    topics: Topics,
    serde: RecordSerde,
    services: dict[str, ServiceProcess],
    events: TopicCollector,
    smtp: RecordingSmtp,
) -> None:
    """The poison pill of issue 11: an attachment holding CR LF (its content type here) made
    the router's MIME build raise, and the router exit, at every restart. Ingest refuses such
    a request now, so this one is put straight on the router's topic, as a bug elsewhere
    could: the router quarantines it, its recipient gets REJECTED internal_error, the next
    record of the same partition is delivered, and `dlq list|replay --internal` show and
    republish it."""
    run = uuid.uuid4().hex[:8]
    route = topics.route(Priority.TRANSACTIONAL)
    poison_mid, good_mid = f"poison-{run}", f"after-poison-{run}"

    def accepted(mid: str, attachments: list[Attachment]) -> bytes:
        request = EmailRequested(
            message_id=mid,
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to=[Recipient(f"{mid}@inbox.mailstream.test")],
            subject=f"routed {mid}",
            text_body="x",
            attachments=attachments,
            requested_at=0,
        )
        return serde.encode(
            AcceptedRequest(
                request=request,
                priority=Priority.TRANSACTIONAL,
                recipients=[f"{mid}@inbox.mailstream.test"],
                accepted_at=time.time_ns() // 1_000_000,
            )
        )

    producer = Producer(producer_config(settings.kafka))
    bad = Attachment(filename="a.txt", content_type="text/plain\r\nBcc: victim@x.example",
                     content=b"x")  # fmt: skip
    # The same key puts both on one partition: the good one waits behind the poison.
    producer.produce(route, key=b"same", value=accepted(poison_mid, [bad]))
    producer.produce(route, key=b"same", value=accepted(good_mid, []))
    assert producer.flush(30) == 0
    poisoned = until_terminal(events, poison_mid, timeout=90)
    assert [(e.type, e.reason) for e in poisoned] == [(EventType.REJECTED, "internal_error")]
    delivered = until_terminal(events, good_mid, timeout=90)
    assert [e.type for e in delivered] == [EventType.DELIVERED]
    router = services["services.router"]
    assert router.alive()
    assert router.count_in_log('"record_quarantined"') >= 1
    assert not any(f"routed {poison_mid}".encode() in m.data for m in smtp.messages)

    listed = mailstream(env, "dlq", "list", "--internal", "--limit", "100000")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if f"{route}:" in row)
    assert "router-transactional" in line and "ValueError" in line, line
    where = line.split()[0]
    replayed = mailstream(env, "dlq", "replay", "--internal", "--offset", where)
    assert replayed.returncode == 0, replayed.stderr
    assert f"-> {route}" in replayed.stdout
    # Replayed, it is quarantined again: the same REJECTED (one event id), still not sent.
    wait_until(
        "the replay to be quarantined again",
        lambda: router.count_in_log('"record_quarantined"') >= 2,
        60,
    )
    rejected = {e.event_id for e in events_for(events.items, poison_mid)}
    assert len(rejected) == 1
