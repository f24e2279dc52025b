"""Routing outcomes decided by DNS and by the receiving MX, against the real stack's dnsmasq
(deploy/local/dnsmasq.conf holds these test zones) and a scripted SMTP server."""

from __future__ import annotations

import time
import uuid
from email import message_from_bytes
from email.policy import default

import pytest

from services.client import EmailClient, Priority
from services.common.avro.records import BounceKind, EventType
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
)
from tests.integration.harness import (
    send_message as _send,
)
from tests.integration.harness import (
    until_terminal as _terminal,
)

FROM = "hello@acme.mailstream.test"


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("nosuch.mailstream.test", "no_such_domain"),
        ("nullmx.mailstream.test", "null_mx"),
    ],
)
def test_domains_that_cannot_receive_mail_bounce_hard(
    client: EmailClient, events: TopicCollector, domain: str, reason: str
) -> None:
    mid = _send(client, f"someone@{domain}")
    mine = _terminal(events, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.BOUNCED]
    bounced = mine[-1]
    assert bounced.reason == reason
    assert bounced.bounce is not None and bounced.bounce.kind is BounceKind.HARD
    assert bounced.bounce.category == "bad_domain"
    assert bounced.attempt == 0 and bounced.smtp is None


def test_falls_back_to_the_second_mx_when_the_first_refuses_connections(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = _send(client, "bob@fallback.mailstream.test")
    mine = _terminal(events, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED]
    assert mine[-1].smtp is not None and mine[-1].smtp.mx_host == "mx.mailstream.test"
    assert any(f"subject {mid}".encode() in m.data for m in smtp.messages)


def test_a_domain_without_mx_is_its_own_mx(client: EmailClient, events: TopicCollector) -> None:
    mid = _send(client, "bob@implicit.mailstream.test")
    mine = _terminal(events, mid)
    assert mine[-1].type is EventType.DELIVERED
    assert mine[-1].smtp is not None and mine[-1].smtp.mx_host == "implicit.mailstream.test"


def test_deferred_until_expires_at_then_expired(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    recipient = f"busy-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    smtp.script_rcpt(recipient, ["451 4.3.0 Try again later"] * 20)
    expires_at = time.time_ns() // 1_000_000 + 5_000
    mid = _send(client, recipient, expires_at=expires_at)
    mine = _terminal(events, mid, timeout=30)
    types = [e.type for e in mine]
    assert types[0] is EventType.ACCEPTED and types[-1] is EventType.EXPIRED
    assert EventType.DEFERRED in types and EventType.DELIVERED not in types
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert [e.attempt for e in deferred] == list(range(1, len(deferred) + 1))
    assert all(e.next_attempt_at is not None and e.next_attempt_at < expires_at for e in deferred)
    assert mine[-1].reason == "expired"
    assert len(smtp.rcpt_replies(recipient)) == len(deferred) + (
        1 if mine[-1].attempt > deferred[-1].attempt else 0
    )


def test_bulk_gets_one_click_unsubscribe_and_bulk_without_it_is_rejected(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    ok = _send(
        client,
        "news@inbox.mailstream.test",
        priority=Priority.BULK,
        headers={"List-Unsubscribe": "<https://acme.mailstream.test/u/1>"},
    )
    refused = _send(client, "news@inbox.mailstream.test", priority=Priority.BULK)
    assert _terminal(events, ok)[-1].type is EventType.DELIVERED
    rejected = _terminal(events, refused)
    assert [(e.type, e.reason) for e in rejected] == [
        (EventType.REJECTED, "list_unsubscribe_missing")
    ]
    raw = next(m.data for m in smtp.messages if f"subject {ok}".encode() in m.data)
    msg = message_from_bytes(raw, policy=default)
    assert msg["List-Unsubscribe"] == "<https://acme.mailstream.test/u/1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
