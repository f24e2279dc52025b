import pytest

from services.common.avro.records import BounceKind
from services.sender.outcome import (
    CATEGORIES,
    Outcome,
    classify,
    enhanced_code,
    retry_after_s,
)

D, F, B = Outcome.DELIVERED, Outcome.DEFERRED, Outcome.BOUNCED
HARD, SOFT = BounceKind.HARD, BounceKind.SOFT

# (code, reply text as aiosmtplib hands it over, outcome, category, bounce kind)
TABLE = [
    # Deliveries
    (250, "2.0.0 Ok: queued as ABC", D, "delivered", None),
    (250, "2.0.0 OK  1700000000 a1-20020a05.123 - gsmtp", D, "delivered", None),
    (251, "User not local; will forward", D, "delivered", None),
    # Unknown recipients, as the big providers say it
    (550, "5.1.1 User unknown", B, "invalid_recipient", HARD),
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try double-"
        "checking the recipient's email address for typos or unnecessary spaces. "
        "https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp",
        B,
        "invalid_recipient",
        HARD,
    ),
    (550, "5.5.0 Requested action not taken: mailbox unavailable", B, "invalid_recipient", HARD),
    (
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        B,
        "invalid_recipient",
        HARD,
    ),
    (
        550,
        "5.4.1 Recipient address rejected: Access denied. AS(201806281) [BN8NAM12FT]",
        B,
        "invalid_recipient",
        HARD,
    ),
    (
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - "
        "mta1234.mail.bf1.yahoo.com",
        B,
        "invalid_recipient",
        HARD,
    ),
    (550, "No such user here", B, "invalid_recipient", HARD),
    (
        550,
        "Requested action not taken: mailbox unavailable (in reply to RCPT TO)",
        B,
        "invalid_recipient",
        HARD,
    ),
    (553, "5.1.3 Invalid address syntax", B, "invalid_recipient", HARD),
    (551, "User not local; please try <x@elsewhere.example>", B, "invalid_recipient", HARD),
    (550, "5.7.17 Mailbox owner has changed", B, "invalid_recipient", HARD),
    # Domains
    (553, "5.1.2 Bad destination system address", B, "bad_domain", HARD),
    (556, "5.1.10 Recipient address has null MX", B, "bad_domain", HARD),
    (550, "Domain does not exist", B, "bad_domain", HARD),
    (521, "mx.example does not accept mail", B, "bad_domain", HARD),
    # Disabled mailboxes
    (
        550,
        "5.2.1 The email account that you tried to reach is disabled. gsmtp",
        B,
        "disabled_mailbox",
        HARD,
    ),
    (
        550,
        "5.2.1 The email account that you tried to reach is inactive",
        B,
        "disabled_mailbox",
        HARD,
    ),
    (550, "Account has been suspended", B, "disabled_mailbox", HARD),
    # Quota: permanent code, temporary condition -> SOFT
    (552, "5.2.2 mailbox full", B, "quota", SOFT),
    (
        552,
        "5.2.2 The email account that you tried to reach is over quota. gsmtp",
        B,
        "quota",
        SOFT,
    ),
    (452, "4.2.2 Mailbox full", F, "quota", None),
    (452, "Insufficient system storage", F, "quota", None),
    (554, "Recipient mailbox is full", B, "quota", SOFT),
    # Size
    (552, "5.3.4 Message too big for system", B, "message_too_large", SOFT),
    (552, "5.3.4 Message size exceeds fixed limit", B, "message_too_large", SOFT),
    (552, "Message size exceeds maximum permitted", B, "message_too_large", SOFT),
    # Blocks on reputation or content
    (
        550,
        "5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request "
        "removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1",
        B,
        "spam_block",
        SOFT,
    ),
    (554, "5.7.1 Rejected: listed on a blocklist", B, "spam_block", SOFT),
    (550, "Message rejected as spam", B, "spam_block", SOFT),
    (
        550,
        "5.7.1 Our system has detected that this message is likely unsolicited mail. gsmtp",
        B,
        "spam_block",
        SOFT,
    ),
    (550, "5.7.606 Access denied, banned sending IP [192.0.2.1]", B, "spam_block", SOFT),
    (
        554,
        "5.7.1 Your access to this mail system has been rejected due to the sending MTA's poor"
        " reputation",
        B,
        "spam_block",
        SOFT,
    ),
    (554, "5.6.0 Message contains a virus", B, "content", SOFT),
    (552, "5.7.0 Attachment type not allowed", B, "content", SOFT),
    # Authentication
    (554, "5.7.26 DMARC policy", B, "authentication", SOFT),
    (
        550,
        "5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
        "requires all senders to authenticate with either SPF or DKIM.",
        B,
        "authentication",
        SOFT,
    ),
    (
        550,
        "5.7.1 Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
        B,
        "authentication",
        SOFT,
    ),
    (550, "5.7.23 SPF validation failed", B, "authentication", SOFT),
    (451, "4.7.24 SPF validation error", F, "authentication", None),
    # Policy, relaying, sender
    (550, "5.7.1 Message rejected due to local policy", B, "policy", SOFT),
    (554, "5.7.1 Relay access denied", B, "relay_denied", HARD),
    (
        553,
        "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
        B,
        "relay_denied",
        HARD,
    ),
    (553, "5.1.8 Sender address rejected: Domain not found", B, "bad_sender", SOFT),
    (452, "4.5.3 Too many recipients", F, "too_many_recipients", None),
    # Rate limits and greylisting
    (421, "4.7.0 Too many connections from your IP, try again later", F, "rate_limited", None),
    (450, "4.7.1 Rate limited, please slow down", F, "rate_limited", None),
    (
        421,
        "4.7.28 Our system has detected an unusual rate of unsolicited mail originating from "
        "your IP address. gsmtp",
        F,
        "rate_limited",
        None,
    ),
    (
        421,
        "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or "
        "user complaints",
        F,
        "rate_limited",
        None,
    ),
    (550, "5.7.1 Too many messages, rate limit exceeded", B, "rate_limited", SOFT),
    (451, "4.7.1 Greylisting in action, please come back later", F, "greylisted", None),
    (451, "4.7.1 Greylisted, try again later", F, "greylisted", None),
    (550, "5.7.1 Greylisted", B, "greylisted", SOFT),
    # Infrastructure, TLS, protocol
    (421, "Service not available", F, "connection", None),
    (451, "4.4.1 No answer from host", F, "connection", None),
    (451, "4.4.3 Directory server failure", F, "dns_failure", None),
    (550, "5.4.4 Unable to route", B, "routing", HARD),
    (554, "5.4.6 Routing loop detected", B, "routing", HARD),
    (451, "4.4.7 Message delayed too long", F, "message_expired", None),
    (530, "5.7.0 Must issue a STARTTLS command first", B, "tls", SOFT),
    (454, "4.7.0 TLS not available due to local problem", F, "tls", None),
    (500, "5.5.1 Command unrecognized", B, "protocol", SOFT),
    (503, "Bad sequence of commands", B, "protocol", SOFT),
    (451, "4.3.0 Try again later", F, "other", None),
    (599, "strange", B, "other", HARD),
    # The reply line with its basic code left on
    (550, "550 5.1.1 <x@y>: Recipient address rejected", B, "invalid_recipient", HARD),
]


@pytest.mark.parametrize(("code", "text", "outcome", "category", "kind"), TABLE)
def test_reply_classification(
    code: int, text: str, outcome: Outcome, category: str, kind: BounceKind | None
) -> None:
    result = classify(code, text)
    assert (result.outcome, result.category, result.bounce_kind) == (outcome, category, kind)
    assert result.category in CATEGORIES


def test_the_table_is_big_enough_and_covers_every_category() -> None:
    assert len(TABLE) >= 40
    assert CATEGORIES - {row[3] for row in TABLE} == set()


@pytest.mark.parametrize(
    ("connection_error", "category"),
    [
        ("connection", "connection"),
        ("connection_lost", "connection"),
        ("routing", "routing"),
        ("tls", "tls"),
        (None, "connection"),
    ],
)
def test_no_reply_is_a_deferral_with_its_cause(connection_error: str | None, category: str) -> None:
    result = classify(None, "Connection refused", connection_error=connection_error)
    assert result.outcome is Outcome.DEFERRED
    assert result.category == category
    assert result.bounce_kind is None


def test_enhanced_code_parsing() -> None:
    assert enhanced_code("5.1.1 <x@y> unknown") == "5.1.1"
    assert enhanced_code("550 5.1.10 null MX") == "5.1.10"
    assert enhanced_code("User unknown 5.1.1") is None
    assert enhanced_code("") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.0 Try again in 60 seconds", 60),
        ("Greylisted, please try again in 5 minutes", 300),
        ("rate limited; retry after 120s", 120),
        ("Please wait 2 min before retrying", 120),
        ("deferred, try again in 1 hour", 3600),
        ("retry in 10 days", None),
        ("try again in 500 hours", 24 * 3600),
        ("Try again later", None),
        ("5.1.1 User unknown", None),
    ],
)
def test_retry_after_hint(text: str, seconds: int | None) -> None:
    assert retry_after_s(text) == seconds


def test_the_hint_rides_on_the_classification() -> None:
    assert classify(451, "4.7.1 Greylisted, try again in 300 seconds").retry_after_s == 300
    assert classify(250, "2.0.0 Ok, try again in 5 seconds").retry_after_s is None


def test_a_host_without_smtputf8_is_a_soft_bounce_not_a_retry() -> None:
    result = classify(None, "mx does not offer SMTPUTF8", connection_error="smtputf8_unsupported")
    assert (result.outcome, result.category, result.bounce_kind) == (
        Outcome.BOUNCED,
        "protocol",
        BounceKind.SOFT,
    )


@pytest.mark.parametrize(
    ("stage", "kind"),
    [
        ("rcpt", BounceKind.HARD),
        (None, BounceKind.HARD),
        ("mail", BounceKind.SOFT),
        ("data", BounceKind.SOFT),
    ],
)
def test_a_5xx_of_no_known_cause_is_hard_only_when_it_answers_rcpt(
    stage: str | None, kind: BounceKind
) -> None:
    result = classify(554, "5.0.0 Transaction failed", stage=stage)
    assert (result.outcome, result.category, result.bounce_kind) == (Outcome.BOUNCED, "other", kind)


def test_a_known_cause_keeps_its_kind_at_any_stage() -> None:
    assert classify(550, "5.1.1 User unknown", stage="data").bounce_kind is BounceKind.HARD
    assert classify(554, "5.7.1 rejected as spam", stage="rcpt").bounce_kind is BounceKind.SOFT


def test_a_421_greeting_defers_as_a_connection_failure_with_its_code() -> None:
    result = classify(421, "4.3.2 Service not available", connection_error="connection")
    assert (result.outcome, result.category) == (Outcome.DEFERRED, "connection")
