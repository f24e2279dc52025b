"""The SMTP fault matrix (issue 4): every fault an MX can throw at the sender, and the event,
retry and suppression each one must give.

Faults on one recipient (4xx and 5xx at RCPT) are scripted on the session's recording server;
faults on a whole connection (421 at connect, a dropped connection, silence, slow replies, a
broken STARTTLS, a disconnect in DATA, 5xx at the end of DATA) come from scripted servers of
this module (faulty_smtp.py), each on a loopback address of its own at the recording server's
port, behind the fault-*.mailstream.test zones of deploy/local/dnsmasq.conf.

Already covered elsewhere and not repeated here: 451 then 250 and a "try again in N seconds"
hint (tests/integration/test_retry.py); 451 until expires_at, then EXPIRED, and an MX refusing
TCP connections with a fallback to the next (test_routing.py); 550 5.1.1 then SUPPRESSED, and
three 552 5.2.2 soft bounces then SUPPRESSED (test_suppression.py); a certificate that does
not verify under a `required` TLS policy, never sent in clear (test_tls.py, and test_mta_sts.py
under an enforced MTA-STS policy); NXDOMAIN and null MX (test_routing.py).

The figures table (fault -> events seen) is printed at the end of the module.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.client import EmailClient
from services.common.avro.records import BounceKind, EmailEvent, EventType
from services.sender.config import SenderSettings
from tests.chaos.faulty_smtp import Fault, FaultySmtp
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
    events_for,
    mailstream,
    send_message,
    until_terminal,
)

ACCEPTED = EventType.ACCEPTED
DEFERRED = EventType.DEFERRED
DELIVERED = EventType.DELIVERED
BOUNCED = EventType.BOUNCED
EXPIRED = EventType.EXPIRED
SUPPRESSED = EventType.SUPPRESSED
HARD = BounceKind.HARD
SOFT = BounceKind.SOFT
# The session's delay tiers (MAILSTREAM_DELAY_TIERS_S in tests/stack.py), in ms.
TIERS_MS = (1000, 2000, 4000)
# How long to keep watching after a terminal event for a second delivery of the same message.
SETTLE_S = 2.0


@dataclass(frozen=True)
class Mx:
    name: str
    address: str
    options: dict[str, Any] = field(default_factory=dict)


# The scripted MX hosts, by key; their names and addresses are in deploy/local/dnsmasq.conf.
# Each test scripts a server of its own: the sender pools good connections, so a server that
# once delivered would hand a later test a pooled connection instead of a faulty new one.
SERVERS = {
    "421": Mx("mx-421.mailstream.test", "127.0.0.21"),
    "421-always": Mx("mx-421-always.mailstream.test", "127.0.0.22"),
    "421-first": Mx("mx-421-first.mailstream.test", "127.0.0.23"),
    "drop-first": Mx("mx-drop-first.mailstream.test", "127.0.0.24"),
    "dropdata": Mx("mx-dropdata.mailstream.test", "127.0.0.25"),
    "dropdot": Mx("mx-dropdot.mailstream.test", "127.0.0.26"),
    "silent": Mx("mx-silent.mailstream.test", "127.0.0.27"),
    "slow": Mx(
        "mx-slow.mailstream.test", "127.0.0.28", {"greeting_delay_s": 3.0, "reply_delay_s": 0.5}
    ),
    "tls": Mx("mx-tlsfail.mailstream.test", "127.0.0.29", {"offer_starttls": True}),
    "data": Mx("mx-data.mailstream.test", "127.0.0.30"),
}

# Filled as the tests run. FIGURES: (fault, events seen, what followed) for the table printed
# last; SUPPRESSIONS: address -> the suppression reason it must have, None for none at all.
FIGURES: list[tuple[str, str, str]] = []
SUPPRESSIONS: dict[str, str | None] = {}


@pytest.fixture(scope="module")
def faulty(smtp: RecordingSmtp) -> Iterator[dict[str, FaultySmtp]]:
    """The scripted servers, on the recording server's port: the sender uses one port for
    every MX (MAILSTREAM_SMTP__PORT)."""
    servers = {
        key: FaultySmtp(host=mx.address, port=smtp.port, name=mx.name, **mx.options)
        for key, mx in SERVERS.items()
    }
    started: list[FaultySmtp] = []
    try:
        for server in servers.values():
            server.start()
            started.append(server)
        yield servers
    finally:
        for server in started:
            server.stop()


def _recipient(label: str, domain: str = "inbox.mailstream.test") -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}@{domain}"


def _types(mine: list[EmailEvent]) -> list[EventType]:
    return [e.type for e in mine]


def _describe(mine: list[EmailEvent]) -> str:
    """ACCEPTED > DEFERRED connection #1 +1s > DELIVERED #2 via mx-421: one table cell."""
    steps = []
    for e in mine:
        step = e.type.value
        if e.type is BOUNCED and e.bounce is not None:
            step += f" {e.bounce.kind.value} {e.bounce.category}"
        elif e.reason and e.type is not SUPPRESSED:
            step += f" {e.reason}"
        if e.attempt:
            step += f" #{e.attempt}"
        if e.next_attempt_at is not None:
            step += f" +{(e.next_attempt_at - e.occurred_at) / 1000:.0f}s"
        if e.type is DELIVERED and e.smtp is not None and e.smtp.mx_host:
            step += f" via {e.smtp.mx_host.split('.')[0]}"
        steps.append(step)
    return " > ".join(steps)


def _record(fault: str, mine: list[EmailEvent], then: str = "") -> None:
    FIGURES.append((fault, _describe(mine), then))


def _settled(events: TopicCollector, mid: str) -> list[EmailEvent]:
    """The message's events a while after its terminal one: a second send would show by now."""
    until_terminal(events, mid)
    time.sleep(SETTLE_S)
    return events_for(events.items, mid)


def _assert_deferrals(deferred: list[EmailEvent], *, reason: str) -> None:
    """Attempts counted 1, 2, 3 ... each due again after its delay tier."""
    assert [e.attempt for e in deferred] == list(range(1, len(deferred) + 1))
    assert all(e.reason == reason and e.bounce is None for e in deferred), deferred
    waits = [e.next_attempt_at - e.occurred_at for e in deferred if e.next_attempt_at]
    assert waits == list(TIERS_MS[: len(deferred)]), waits


def _next_message_is(
    client: EmailClient, events: TopicCollector, recipient: str, expected: list[EventType]
) -> list[EmailEvent]:
    mine = until_terminal(events, send_message(client, recipient))
    assert _types(mine) == expected, _describe(mine)
    return mine


# ------------------------------------------------------------------ 421 at connect


def test_421_at_connect_is_deferred_then_delivered_when_the_server_recovers(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    server = faulty["421"]
    server.plan(Fault.GREET_421, Fault.GREET_421)
    recipient = _recipient("greet421", "fault-421.mailstream.test")
    mid = send_message(client, recipient)
    mine = _settled(events, mid)
    _record("421 at connect, twice, then 220", mine)

    assert _types(mine) == [ACCEPTED, DEFERRED, DEFERRED, DELIVERED], _describe(mine)
    deferred, delivered = mine[1:3], mine[3]
    _assert_deferrals(deferred, reason="connection")
    for e in deferred:
        assert e.smtp is not None and e.smtp.mx_host == SERVERS["421"].name
        assert e.smtp.code == 421 and "Service not available" in e.smtp.text
    assert delivered.attempt == 3
    assert delivered.smtp is not None and delivered.smtp.code == 250
    assert delivered.smtp.mx_host == SERVERS["421"].name
    connections = server.connections
    assert [c.fault for c in connections] == [Fault.GREET_421, Fault.GREET_421, Fault.NONE]
    # Each retry waited for its tier (1 s, then 2 s) before connecting again.
    gaps = [b.opened_at - a.opened_at for a, b in itertools.pairwise(connections)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, gaps
    assert len(server.accepted_with(f"subject {mid}".encode())) == 1
    SUPPRESSIONS[recipient] = None


def test_421_at_connect_until_expires_at_ends_expired_and_suppresses_nothing(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    server = faulty["421-always"]
    server.plan(always=Fault.GREET_421)
    recipient = _recipient("greet421x", "fault-421-expire.mailstream.test")
    expires_at = time.time_ns() // 1_000_000 + 4_000
    mid = send_message(client, recipient, expires_at=expires_at)
    mine = until_terminal(events, mid, timeout=30)
    _record("421 at connect until expires_at", mine)

    types = _types(mine)
    assert types[0] is ACCEPTED and types[-1] is EXPIRED, _describe(mine)
    assert BOUNCED not in types and DELIVERED not in types
    deferred = [e for e in mine if e.type is DEFERRED]
    assert deferred, "never retried"
    _assert_deferrals(deferred, reason="connection")
    assert all(e.next_attempt_at is not None and e.next_attempt_at < expires_at for e in deferred)
    assert mine[-1].reason == "expired"
    # One connection per attempt: the expiry either followed one more attempt or none.
    attempts = len(deferred) + (1 if mine[-1].attempt > deferred[-1].attempt else 0)
    assert len(server.connections) == attempts
    # However many times the host was unreachable, DEFERRED never counts towards suppression.
    SUPPRESSIONS[recipient] = None


def test_the_421_greeting_is_reported_with_its_code(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    server = faulty["421-always"]
    server.plan(always=Fault.GREET_421)
    expires_at = time.time_ns() // 1_000_000 + 2_500
    mid = send_message(
        client, _recipient("greet421c", "fault-421-expire.mailstream.test"), expires_at=expires_at
    )
    mine = until_terminal(events, mid, timeout=30)
    first = next(e for e in mine if e.smtp is not None)
    assert first.type is DEFERRED and first.reason == "connection"
    assert (first.smtp.code, first.smtp.enhanced_code) == (421, "4.3.2"), first.smtp


# ------------------------------------------------------------------ MX fallback under faults


@pytest.mark.parametrize(
    ("domain", "key", "fault"),
    [
        ("fault-421-fallback.mailstream.test", "421-first", Fault.GREET_421),
        ("fault-drop-fallback.mailstream.test", "drop-first", Fault.DROP_AT_CONNECT),
    ],
    ids=["421-at-connect", "drop-at-connect"],
)
def test_a_faulty_first_mx_falls_back_to_the_second_in_the_same_attempt(
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    faulty: dict[str, FaultySmtp],
    domain: str,
    key: str,
    fault: Fault,
) -> None:
    """RFC 5321 5.1: a client unable to deliver to the best MX tries the next one. The sender
    moves on only when a host gave no reply, and a 421 greeting counts as none (aiosmtplib's
    connect() raises on a non-220 greeting), so a 421 at connect falls back as it should."""
    first = faulty[key]
    first.plan(always=fault)
    mid = send_message(client, _recipient("fallback", domain))
    mine = _settled(events, mid)
    _record(f"{fault.value} on MX 10, MX 20 good", mine)

    assert _types(mine) == [ACCEPTED, DELIVERED], _describe(mine)
    delivered = mine[-1]
    assert delivered.attempt == 1
    assert delivered.smtp is not None and delivered.smtp.mx_host == "mx.mailstream.test"
    tried = first.connections
    assert tried and all(c.fault is fault for c in tried)
    assert not first.accepted
    assert sum(f"subject {mid}".encode() in m.data for m in smtp.messages) == 1


# ------------------------------------------------------------------ disconnect in DATA


@pytest.mark.parametrize(
    ("key", "fault"),
    [("dropdata", Fault.DROP_IN_DATA), ("dropdot", Fault.DROP_AFTER_DOT)],
    ids=["mid-message", "after-the-final-dot"],
)
def test_a_disconnect_in_data_is_deferred_and_the_retry_delivers_exactly_once(
    client: EmailClient,
    events: TopicCollector,
    faulty: dict[str, FaultySmtp],
    key: str,
    fault: Fault,
) -> None:
    server = faulty[key]
    server.plan(fault)
    domain = SERVERS[key].name.replace("mx-", "fault-", 1)
    mid = send_message(client, _recipient("dropped", domain))
    mine = _settled(events, mid)
    _record(fault.value, mine)

    # Not recorded as delivered on the dropped attempt (or the retry would have been skipped
    # as already delivered), and delivered once by the retry.
    assert _types(mine) == [ACCEPTED, DEFERRED, DELIVERED], _describe(mine)
    deferred, delivered = mine[1], mine[2]
    _assert_deferrals([deferred], reason="connection")
    assert deferred.smtp is not None and deferred.smtp.mx_host == SERVERS[key].name
    assert delivered.attempt == 2 and delivered.smtp is not None and delivered.smtp.code == 250
    dropped, retried = server.connections
    assert dropped.fault is fault and dropped.verbs[-1] == "DATA"
    assert retried.fault is Fault.NONE
    if fault is Fault.DROP_AFTER_DOT:
        # The server had the whole message and never said 250: the send is repeated, which is
        # why the receiving MX, not the sender, decides whether the first copy was kept.
        assert f"subject {mid}".encode() in dropped.dropped
    assert len(server.accepted_with(f"subject {mid}".encode())) == 1


# ------------------------------------------------------------------ no reply, slow replies


def test_no_reply_at_all_is_deferred_after_the_connect_timeout_then_retried(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    """A server that accepts the TCP connection and never greets. The sender reads the greeting
    inside connect(), bounded by connect_timeout_s (10 s); the session's command_timeout_s (60 s)
    bounds a stall after the greeting, too long for this suite, so the silence is here: the
    assertion is that the sender gives up at the connect timeout, not later and not sooner,
    defers, and delivers on the retry once the server answers."""
    timeout_s = SenderSettings().smtp.connect_timeout_s
    server = faulty["silent"]
    server.plan(Fault.SILENT)
    mid = send_message(client, _recipient("silent", "fault-silent.mailstream.test"))
    mine = until_terminal(events, mid, timeout=timeout_s + 45)
    _record(f"no reply at all (connect timeout {timeout_s:.0f}s)", mine)

    assert _types(mine) == [ACCEPTED, DEFERRED, DELIVERED], _describe(mine)
    accepted, deferred, delivered = mine
    _assert_deferrals([deferred], reason="connection")
    waited_s = (deferred.occurred_at - accepted.occurred_at) / 1000
    assert timeout_s - 0.5 <= waited_s <= timeout_s + 5, waited_s
    silent, answered = server.connections
    assert silent.fault is Fault.SILENT and silent.closed_at is not None
    held_s = silent.closed_at - silent.opened_at
    assert timeout_s - 0.5 <= held_s <= timeout_s + 2, "the sender did not hang up at its timeout"
    assert answered.fault is Fault.NONE
    assert delivered.attempt == 2 and delivered.smtp is not None and delivered.smtp.code == 250


def test_slow_replies_within_the_timeouts_deliver_on_the_first_attempt(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    """A 3 s greeting and every reply after 0.5 s: slow, but inside connect_timeout_s and
    command_timeout_s, so the one attempt must wait it out rather than give up."""
    server = faulty["slow"]
    mid = send_message(client, _recipient("slow", "fault-slow.mailstream.test"))
    mine = _settled(events, mid)
    _record("slow replies (greeting 3s, each reply 0.5s)", mine)

    assert _types(mine) == [ACCEPTED, DELIVERED], _describe(mine)
    delivered = mine[-1]
    assert delivered.attempt == 1 and delivered.smtp is not None and delivered.smtp.code == 250
    # greeting 3 s + EHLO, MAIL, RCPT, DATA and the final dot at 0.5 s each.
    assert delivered.occurred_at - mine[0].occurred_at >= 5_000
    assert len(server.connections) == 1
    assert len(server.accepted_with(f"subject {mid}".encode())) == 1


# ------------------------------------------------------------------ TLS handshake failure


def test_a_failed_starttls_handshake_falls_back_to_plain_text_when_tls_is_opportunistic(
    client: EmailClient, events: TopicCollector, faulty: dict[str, FaultySmtp]
) -> None:
    """Opportunistic TLS is Postfix's `may`: a handshake that fails is retried at once in clear
    on a new connection. Under a `required` policy it never is (test_tls.py); the session's
    required domains are fixed, so no scripted server can stand behind one here."""
    server = faulty["tls"]
    server.plan(Fault.TLS_BROKEN)
    mid = send_message(client, _recipient("tls", "fault-tls.mailstream.test"))
    mine = _settled(events, mid)
    _record("TLS handshake failure (opportunistic)", mine)

    assert _types(mine) == [ACCEPTED, DELIVERED], _describe(mine)
    delivered = mine[-1]
    assert delivered.attempt == 1 and delivered.smtp is not None
    assert delivered.smtp.tls_version is None, "recorded a TLS version for a plain-text send"
    broken, plain = server.connections
    assert broken.fault is Fault.TLS_BROKEN and broken.verbs == ["EHLO", "STARTTLS"]
    assert "STARTTLS" not in plain.verbs and "DATA" in plain.verbs
    assert len(server.accepted_with(f"subject {mid}".encode())) == 1


# ------------------------------------------------------------------ 4xx at RCPT


@pytest.mark.parametrize(
    ("reply", "times", "category"),
    [
        ("450 4.1.2 Recipient address rejected: Domain not found", 1, "bad_domain"),
        ("451 4.3.5 Server configuration problem", 1, "routing"),
        ("452 4.2.2 Mailbox full", 3, "quota"),
    ],
    ids=["450", "451", "452"],
)
def test_4xx_at_rcpt_is_deferred_with_growing_delays_never_bounced_nor_suppressed(
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    reply: str,
    times: int,
    category: str,
) -> None:
    recipient = _recipient(f"rcpt{reply[:3]}")
    smtp.script_rcpt(recipient, [reply] * times)
    mid = send_message(client, recipient)
    mine = until_terminal(events, mid)
    # Three DEFERRED of a soft-bounce category must not suppress: only BOUNCED ones count.
    after = _next_message_is(client, events, recipient, [ACCEPTED, DELIVERED])
    _record(f"{reply[:3]} at RCPT x{times}, then 250", mine, f"next: {_describe(after[-1:])}")

    assert _types(mine) == [ACCEPTED, *[DEFERRED] * times, DELIVERED], _describe(mine)
    deferred, delivered = mine[1:-1], mine[-1]
    _assert_deferrals(deferred, reason=category)
    code, enhanced = int(reply[:3]), reply.split()[1]
    assert all(e.smtp and (e.smtp.code, e.smtp.enhanced_code) == (code, enhanced) for e in deferred)
    assert delivered.attempt == times + 1
    replies = [r for _, r in smtp.rcpt_replies(recipient)]
    assert replies == [reply] * times + ["250 2.1.5 Ok"] * 2
    SUPPRESSIONS[recipient] = None


# ------------------------------------------------------------------ 5xx at RCPT and after DATA


@pytest.mark.parametrize(
    ("reply", "kind", "category"),
    [
        (
            "550 5.2.1 The email account that you tried to reach is disabled",
            HARD,
            "disabled_mailbox",
        ),
        ("554 5.7.1 Relay access denied", HARD, "relay_denied"),
        ("550 5.7.1 Client host [127.0.0.1] blocked using zen.spamhaus.org", SOFT, "spam_block"),
        ("552 5.2.2 Mailbox full", SOFT, "quota"),
    ],
    ids=["550-disabled", "554-relay", "550-blocklist", "552-full"],
)
def test_5xx_at_rcpt_bounces_at_once_and_only_a_hard_bounce_suppresses(
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    reply: str,
    kind: BounceKind,
    category: str,
) -> None:
    recipient = _recipient(f"rcpt{reply[:3]}")
    smtp.script_rcpt(recipient, [reply])
    mine = until_terminal(events, send_message(client, recipient))
    then = [SUPPRESSED] if kind is HARD else [ACCEPTED, DELIVERED]
    after = _next_message_is(client, events, recipient, then)
    _record(f"{reply[:3]} {reply.split()[1]} at RCPT", mine, f"next: {_describe(after[-1:])}")

    assert _types(mine) == [ACCEPTED, BOUNCED], _describe(mine)
    bounced = mine[-1]
    assert bounced.attempt == 1 and bounced.reason == category and bounced.next_attempt_at is None
    assert bounced.bounce is not None
    assert (bounced.bounce.kind, bounced.bounce.category) == (kind, category)
    assert bounced.smtp is not None and bounced.smtp.code == int(reply[:3])
    # A 5xx is never retried; a suppressed address is never tried again.
    expected_rcpts = 1 if kind is HARD else 2
    assert len(smtp.rcpt_replies(recipient)) == expected_rcpts
    if kind is HARD:
        assert after[0].reason == "suppressed" and after[0].attempt == 0
    SUPPRESSIONS[recipient] = category if kind is HARD else None


@pytest.mark.parametrize(
    ("reply", "category"),
    [
        ("552 5.3.4 Message size exceeds fixed maximum message size", "message_too_large"),
        ("554 5.7.1 Message rejected as spam", "spam_block"),
        ("554 5.0.0 Transaction failed", None),
    ],
    ids=["552-too-large", "554-spam", "554-transaction-failed"],
)
def test_5xx_after_data_for_an_accepted_recipient_is_a_soft_bounce(
    client: EmailClient,
    events: TopicCollector,
    faulty: dict[str, FaultySmtp],
    reply: str,
    category: str | None,
) -> None:
    server = faulty["data"]
    recipient = _recipient(f"data{reply[:3]}", "fault-data.mailstream.test")
    server.script_data(recipient, [reply])
    mid = send_message(client, recipient)
    mine = until_terminal(events, mid)
    after = until_terminal(events, send_message(client, recipient))
    _record(f"{reply[:3]} {reply.split()[1]} after DATA", mine, f"next: {_describe(after[-1:])}")

    assert _types(mine) == [ACCEPTED, BOUNCED], _describe(mine)
    bounced = mine[-1]
    assert bounced.attempt == 1 and bounced.smtp is not None
    assert bounced.smtp.code == int(reply[:3])
    assert bounced.bounce is not None and bounced.bounce.kind is SOFT, bounced.bounce
    if category is not None:
        assert bounced.bounce.category == category == bounced.reason
    assert _types(after) == [ACCEPTED, DELIVERED], "one soft bounce suppressed the address"
    assert not server.accepted_with(f"subject {mid}".encode())
    SUPPRESSIONS[recipient] = None


# ------------------------------------------------------------------ the whole matrix


def test_the_suppression_list_holds_the_hard_bounces_and_nothing_else(
    env: dict[str, str], events: TopicCollector
) -> None:
    """What the tests above left on the tenant's list, as an operator sees it."""
    listed = mailstream(env, "suppressions", "list", "--tenant", "acme", "--limit", "100000")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    for address, reason in SUPPRESSIONS.items():
        if reason is None:
            assert address not in rows, f"{address} was suppressed: {rows.get(address)}"
            continue
        assert address in rows, f"{address} is not suppressed"
        _, listed_reason, *_, state = rows[address]
        # Neither disabled_mailbox nor relay_denied is permanent: a dated expiry, 30 days out.
        assert listed_reason == reason and state == "active" and "never" not in rows[address]


def test_print_the_fault_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    width = max((len(fault) for fault, _, _ in FIGURES), default=10)
    lines = [f"\nSMTP fault matrix ({len(FIGURES)} faults): fault -> events seen"]
    for fault, seen, then in FIGURES:
        lines.append(f"  {fault:{width}}  {seen}" + (f"  ({then})" if then else ""))
    with capsys.disabled():  # the figures belong in the CI log
        print("\n".join(lines))
