"""Routing policy per tenant and priority: an egress pool binds the source address, a smarthost
takes the mail with TLS and a login, an undefined route waits, and the Return-Path domain."""

from __future__ import annotations

import time

from services.client import EmailClient, Priority
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector, send_message, until_terminal
from tests.stack import EGRESS_SOURCE, RELAY_LOGIN

ROUTED = {"tenant_id": "routed", "from_address": "news@routed.mailstream.test"}
UNSUBSCRIBE = {"List-Unsubscribe": "<https://routed.mailstream.test/u/1>"}


def _received(server: RecordingSmtp, mid: str) -> list[bytes]:
    return [m.data for m in server.messages if mid.encode() in m.data]


def test_egress_pool_binds_the_source_address_and_return_path_domain(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = send_message(client, "egress@inbox.mailstream.test", **ROUTED)
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    got = [m for m in smtp.messages if mid.encode() in m.data]
    assert len(got) == 1
    assert got[0].peer == EGRESS_SOURCE
    assert got[0].mail_from == "bounces@bounces.routed.mailstream.test"


def test_default_route_leaves_from_any_address(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    """The control: acme has no routing, so its connections are not bound to the pool."""
    mid = send_message(client, "unbound@inbox.mailstream.test")
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    got = [m for m in smtp.messages if mid.encode() in m.data]
    assert [m.peer for m in got] == ["127.0.0.1"]
    assert got[0].mail_from == "bounces@acme.mailstream.test"


def test_smarthost_takes_the_route_with_tls_and_login(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp, relay: RecordingSmtp
) -> None:
    # The recipient's domain does not exist: only the relay's DNS matters on this route.
    mid = send_message(
        client,
        "someone@no-such-domain.mailstream.test",
        priority=Priority.BULK,
        headers=UNSUBSCRIBE,
        **ROUTED,
    )
    delivered = until_terminal(events, mid)[-1]
    assert delivered.type is EventType.DELIVERED
    assert delivered.smtp is not None and delivered.smtp.mx_host == "relay.mailstream.test"
    assert delivered.smtp.tls_version in ("TLSv1.2", "TLSv1.3")
    got = [m for m in relay.messages if mid.encode() in m.data]
    assert len(got) == 1 and got[0].login == RELAY_LOGIN[0] and got[0].tls
    assert got[0].rcpt_tos == ["someone@no-such-domain.mailstream.test"]
    assert not _received(smtp, mid)


def test_smarthost_refusing_the_login_defers_and_never_bounces(
    client: EmailClient, events: TopicCollector, relay: RecordingSmtp
) -> None:
    mid = send_message(
        client,
        "someone@inbox.mailstream.test",
        tenant_id="badrelay",
        from_address="a@badrelay.mailstream.test",
        expires_at=time.time_ns() // 1_000_000 + 6_000,
    )
    mine = until_terminal(events, mid)
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "authentication" for e in deferred)
    assert mine[-1].type is EventType.EXPIRED
    assert not _received(relay, mid)


def test_undefined_route_waits_instead_of_guessing(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = send_message(
        client,
        "critical@inbox.mailstream.test",
        priority=Priority.CRITICAL,
        expires_at=time.time_ns() // 1_000_000 + 5_000,
        **ROUTED,
    )
    mine = until_terminal(events, mid)
    deferred = [e for e in mine if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "route_unavailable" for e in deferred)
    # Each routing deferral is an attempt of its own: its own event id, backing off along
    # the tiers (1, 2, 4 s here) instead of retrying the first tier until the message expires.
    assert [e.attempt for e in deferred] == list(range(1, len(deferred) + 1))
    assert len({e.event_id for e in deferred}) == len(deferred) >= 2
    waits = [(e.next_attempt_at or 0) - e.occurred_at for e in deferred]
    assert waits == sorted(waits) and waits[-1] > waits[0]
    assert mine[-1].type is EventType.EXPIRED
    assert not _received(smtp, mid)
