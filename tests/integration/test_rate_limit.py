"""A tenant's bulk_per_second limit spaces its bulk mail at the SMTP server."""

from __future__ import annotations

import uuid

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for

N = 10
RATE = 5  # tenant "other" in tests/integration/conftest.py


def _send_bulk(client: EmailClient, mid: str, *, wait: bool = True) -> None:
    client.send(
        new_request(
            tenant_id="other",
            from_address="news@other.mailstream.test",
            to="reader@inbox.mailstream.test",
            message_id=mid,
            subject=f"paced {mid}",
            text_body="x",
            headers={"List-Unsubscribe": "<https://other.mailstream.test/u>"},
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
