"""Bounces feed the suppression list, ingest honours it, and operators edit it with the CLI."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from services.client import EmailClient
from services.common.avro.records import BounceKind, EmailEvent, EventType
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
    mailstream,
)
from tests.integration.harness import (
    send_message as _send,
)
from tests.integration.harness import (
    until_terminal as _terminal,
)

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return mailstream(env, "suppressions", *args)


def _reached_smtp(smtp: RecordingSmtp, mid: str) -> bool:
    return any(f"subject {mid}".encode() in m.data for m in smtp.messages)


def _assert_suppressed(mine: list[EmailEvent]) -> None:
    assert [e.type for e in mine] == [EventType.SUPPRESSED]
    assert mine[0].reason == "suppressed" and mine[0].attempt == 0


def test_a_hard_bounce_suppresses_the_address_for_the_next_message(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    recipient = f"gone-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    smtp.script_rcpt(recipient, ["550 5.1.1 User unknown"])
    first = _terminal(events, _send(client, recipient))
    assert [e.type for e in first] == [EventType.ACCEPTED, EventType.BOUNCED]
    bounced = first[-1]
    assert bounced.bounce is not None
    assert (bounced.bounce.kind, bounced.bounce.category) == (BounceKind.HARD, "invalid_recipient")
    assert bounced.reason == "invalid_recipient"
    tried = len(smtp.rcpt_replies(recipient))

    # The suppression is written before the BOUNCED event is published; any casing matches.
    mid = _send(client, recipient.upper())
    _assert_suppressed(_terminal(events, mid))
    assert len(smtp.rcpt_replies(recipient)) == tried
    assert not _reached_smtp(smtp, mid)


def test_repeated_soft_bounces_suppress_the_address_for_a_while(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp, env: dict[str, str]
) -> None:
    recipient = f"full-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    smtp.script_rcpt(recipient, ["552 5.2.2 Mailbox full"] * 3)
    for _ in range(3):
        mine = _terminal(events, _send(client, recipient))
        assert mine[-1].type is EventType.BOUNCED
        assert mine[-1].bounce is not None
        assert (mine[-1].bounce.kind, mine[-1].bounce.category) == (BounceKind.SOFT, "quota")
    mid = _send(client, recipient)
    _assert_suppressed(_terminal(events, mid))
    assert not _reached_smtp(smtp, mid)

    listed = _cli(env, "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith(recipient))
    assert "soft_bounces" in line and "active" in line and "never" not in line


def test_operators_add_list_and_remove_suppressions(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp, env: dict[str, str]
) -> None:
    address = f"Manual-{uuid.uuid4().hex[:6]}@Inbox.Mailstream.Test"
    lowered = address.lower()

    added = _cli(env, "add", "--tenant", "acme", address, "--reason", "support_request")
    assert added.returncode == 0, added.stderr
    assert lowered in added.stdout

    listed = _cli(env, "list", "--tenant", "acme", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[:2] == ["ADDRESS", "REASON"]
    line = next(x for x in listed.stdout.splitlines() if x.startswith(lowered))
    assert "support_request" in line and "never" in line and "active" in line

    mid = _send(client, lowered)
    _assert_suppressed(_terminal(events, mid))
    assert not _reached_smtp(smtp, mid)

    removed = _cli(env, "remove", "--tenant", "acme", address)
    assert removed.returncode == 0, removed.stderr
    listed = _cli(env, "list", "--tenant", "acme", "--limit", "1000")
    assert lowered not in listed.stdout

    mid = _send(client, lowered)
    mine = _terminal(events, mid)
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED]
    assert _reached_smtp(smtp, mid)

    again = _cli(env, "remove", "--tenant", "acme", address)
    assert again.returncode != 0 and "is not suppressed" in again.stderr
    bad = _cli(env, "add", "--tenant", "acme", "not-an-address")
    assert bad.returncode != 0 and "not an email address" in bad.stderr
    expiring = _cli(env, "add", "--tenant", "acme", address, "--expires-in", "0")
    assert expiring.returncode != 0
    missing = _cli(env, "list")
    assert missing.returncode != 0 and "--tenant" in missing.stderr


def test_list_says_when_a_tenant_has_none(env: dict[str, str], events: TopicCollector) -> None:
    listed = _cli(env, "list", "--tenant", f"nobody-{uuid.uuid4().hex[:6]}")
    assert listed.returncode == 0, listed.stderr
    assert "no suppressions" in listed.stdout
