"""A tenant's bulk_per_second limit spaces its bulk mail at the SMTP server."""

from __future__ import annotations

import time
import uuid

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for

N = 10
RATE = 5  # tenant "other" in tests/integration/conftest.py


def _send_bulk(
    client: EmailClient, mid: str, *, wait: bool = True, send_at: int | None = None
) -> None:
    client.send(
        new_request(
            tenant_id="other",
            from_address="news@other.mailstream.test",
            to="reader@inbox.mailstream.test",
            message_id=mid,
            subject=f"paced {mid}",
            text_body="x",
            headers={"List-Unsubscribe": "<https://other.mailstream.test/u>"},
            send_at=send_at,
        ),
        priority=Priority.BULK,
        wait=wait,
    )


def test_bulk_is_paced_to_the_tenant_limit(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    run = uuid.uuid4().hex[:8]
    # One message first, so the measured ones do not start on a cold path (first SMTP
    # connection, first lookups) that would swallow the first intervals.
    _send_bulk(client, f"warmup-{run}")
    events.wait_for(
        "warm-up",
        lambda xs: EventType.DELIVERED in [e.type for e in events_for(xs, f"warmup-{run}")],
        timeout=60,
    )
    mids = [f"paced-{run}-{i}" for i in range(N)]
    for mid in mids:
        _send_bulk(client, mid, wait=False)
    client.flush()
    events.wait_for(
        "all paced mail",
        lambda xs: all(EventType.DELIVERED in [e.type for e in events_for(xs, m)] for m in mids),
        timeout=60,
    )
    arrivals = sorted(m.at for m in smtp.messages if f"paced-{run}".encode() in m.data)
    assert len(arrivals) == N
    # N messages at RATE per second are paced over (N - 1) / RATE seconds by the router; one
    # interval is allowed for jitter on the way to SMTP (the first pays for the connection).
    # Unpaced, the ten arrive within about 0.1 s.
    assert arrivals[-1] - arrivals[0] >= (N - 2) / RATE


def test_bulk_scheduled_for_later_does_not_hold_the_tenants_other_bulk(
    client: EmailClient, events: TopicCollector
) -> None:
    """A slot is booked when a message could go: one scheduled six hours ahead must not push
    the tenant's next slot (and all its bulk mail) six hours out."""
    run = uuid.uuid4().hex[:8]
    later = f"later-{run}"
    _send_bulk(client, later, send_at=time.time_ns() // 1_000_000 + 6 * 3600_000)
    # The two land on different partitions: let the router take the scheduled one first.
    events.wait_for(
        "the scheduled one accepted",
        lambda xs: EventType.ACCEPTED in [e.type for e in events_for(xs, later)],
        timeout=60,
    )
    time.sleep(2)
    now = f"now-{run}"
    _send_bulk(client, now)
    events.wait_for(
        "the unscheduled message delivered",
        lambda xs: EventType.DELIVERED in [e.type for e in events_for(xs, now)],
        timeout=60,
    )
    seen = [e.type for e in events_for(events.items, later)]
    assert seen == [EventType.ACCEPTED], f"the scheduled one: {seen}"


def test_scheduled_bulk_is_paced_when_it_comes_due(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    """N messages due at the same moment leave at the tenant's rate from then, not together."""
    run = uuid.uuid4().hex[:8]
    send_at = time.time_ns() // 1_000_000 + 4_000
    mids = [f"due-{run}-{i}" for i in range(N)]
    for mid in mids:
        _send_bulk(client, mid, wait=False, send_at=send_at)
    client.flush()
    events.wait_for(
        "all scheduled paced mail",
        lambda xs: all(EventType.DELIVERED in [e.type for e in events_for(xs, m)] for m in mids),
        timeout=90,
    )
    arrivals = sorted(m.at for m in smtp.messages if f"due-{run}".encode() in m.data)
    assert len(arrivals) == N
    assert arrivals[0] * 1000 >= send_at, "delivered before send_at"
    assert arrivals[-1] - arrivals[0] >= (N - 2) / RATE
