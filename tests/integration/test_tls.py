"""STARTTLS: opportunistic everywhere, verified where a domain requires it."""

from __future__ import annotations

import time

from services.client import EmailClient
from services.common.avro.records import EventType
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
)
from tests.integration.harness import (
    send_message as _send,
)
from tests.integration.harness import (
    until_terminal as _until_terminal,
)

FROM = "hello@acme.mailstream.test"


def test_opportunistic_starttls_is_used_and_recorded(
    client: EmailClient, events: TopicCollector
) -> None:
    delivered = _until_terminal(events, _send(client, "tls@inbox.mailstream.test"))[-1]
    assert delivered.type is EventType.DELIVERED
    assert delivered.smtp is not None and delivered.smtp.tls_version in ("TLSv1.2", "TLSv1.3")


def test_required_tls_with_a_valid_certificate_delivers(
    client: EmailClient, events: TopicCollector
) -> None:
    delivered = _until_terminal(events, _send(client, "bob@tls-required.mailstream.test"))[-1]
    assert delivered.type is EventType.DELIVERED
    assert delivered.smtp is not None and delivered.smtp.tls_version in ("TLSv1.2", "TLSv1.3")


# Runs after the test above on purpose: the same server address then has a pooled connection
# verified for mx.mailstream.test, which must not be reused for badcert.mailstream.test.
def test_required_tls_with_a_mismatched_certificate_never_sends_in_plain_text(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = _send(
        client, "bob@tls-badcert.mailstream.test", expires_at=time.time_ns() // 1_000_000 + 8_000
    )
    mine = _until_terminal(events, mid)
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "tls" for e in deferred)
    assert mine[-1].type is EventType.EXPIRED
    assert not any(mid.encode() in m.data for m in smtp.messages)
    assert not smtp.rcpt_replies("bob@tls-badcert.mailstream.test")
