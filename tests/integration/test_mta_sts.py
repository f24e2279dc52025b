"""MTA-STS (RFC 8461): a domain's published policy, fetched over verified HTTPS through the
test DNS, makes verified TLS to a matching MX a must when it enforces."""

from __future__ import annotations

import time

from services.client import EmailClient
from services.common.avro.records import EventType
from tests.integration.harness import (
    PolicyServer,
    RecordingSmtp,
    TopicCollector,
    send_message,
    until_terminal,
)


def _soon_ms(seconds: float) -> int:
    return time.time_ns() // 1_000_000 + int(seconds * 1000)


def test_enforced_policy_with_a_matching_mx_and_valid_certificate_delivers(
    client: EmailClient, events: TopicCollector, policy_server: PolicyServer
) -> None:
    delivered = until_terminal(events, send_message(client, "a@sts-enforce.mailstream.test"))[-1]
    assert delivered.type is EventType.DELIVERED
    assert delivered.smtp is not None and delivered.smtp.tls_version in ("TLSv1.2", "TLSv1.3")
    assert "mta-sts.sts-enforce.mailstream.test" in policy_server.requests


def test_enforced_policy_refuses_an_mx_whose_certificate_does_not_verify(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    """badcert.mailstream.test matches the policy but its certificate is for another name;
    without the policy this domain would get opportunistic TLS and be delivered."""
    mid = send_message(client, "a@sts-badcert.mailstream.test", expires_at=_soon_ms(6))
    mine = until_terminal(events, mid)
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "tls" for e in deferred)
    assert mine[-1].type is EventType.EXPIRED
    assert not smtp.rcpt_replies("a@sts-badcert.mailstream.test")


def test_enforced_policy_with_no_matching_mx_waits(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = send_message(client, "a@sts-mismatch.mailstream.test", expires_at=_soon_ms(5))
    mine = until_terminal(events, mid)
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "mta_sts_mx_mismatch" for e in deferred)
    assert mine[-1].type is EventType.EXPIRED
    assert not smtp.rcpt_replies("a@sts-mismatch.mailstream.test")


def test_testing_mode_policy_does_not_hold_mail_back(
    client: EmailClient, events: TopicCollector
) -> None:
    """The same mismatch and invalid certificate as above, under mode: testing."""
    delivered = until_terminal(events, send_message(client, "a@sts-testing.mailstream.test"))[-1]
    assert delivered.type is EventType.DELIVERED
