"""1,000 requests over the three priority topics: exactly 1,000 deliveries, no more, no less."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector

N = 1000
UNSUBSCRIBE = {"List-Unsubscribe": "<https://acme.mailstream.test/unsubscribe/volume>"}


def test_a_thousand_requests_over_three_priorities(
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [f"vol-{run}-{i:04d}" for i in range(N)]
    priorities = list(Priority)
    started = time.monotonic()
    for i, mid in enumerate(ids):
        client.send(
            new_request(
                tenant_id="acme",
                from_address="hello@acme.mailstream.test",
                to=f"user{i}@inbox.mailstream.test",
                message_id=mid,
                subject=f"volume {mid}",
                text_body="x",
                headers=UNSUBSCRIBE if priorities[i % 3] is Priority.BULK else {},
            ),
            priority=priorities[i % 3],
            wait=False,
        )
    client.flush()
    wanted = set(ids)

    def delivered(items: list) -> set[str]:  # type: ignore[type-arg]
        return {
            e.message_id for e in items if e.type is EventType.DELIVERED and e.message_id in wanted
        }

    events.wait_for(f"{N} deliveries", lambda xs: len(delivered(xs)) == N, timeout=240)
    elapsed = time.monotonic() - started
    time.sleep(2)  # anything delivered twice would show up by now
    mine = [e for e in events.items if e.message_id in wanted and e.type is EventType.DELIVERED]
    assert len(mine) == N
    assert {e.priority for e in mine} == set(Priority)
    at_smtp = [m for m in smtp.messages if b"volume vol-" + run.encode() in m.data]
    subjects = {re.search(rb"volume (vol-\S+)", m.data).group(1) for m in at_smtp}  # type: ignore[union-attr]
    assert len(at_smtp) == N and len(subjects) == N
    with capsys.disabled():  # the figures belong in the CI log
        print(f"\n{N} messages delivered end to end in {elapsed:.1f}s ({N / elapsed:.0f}/s)")
