"""One pure function from an SMTP reply (or a failure to get one) to a delivery outcome.

The outcome follows the basic reply code: 2xx DELIVERED, 4xx (or no reply) DEFERRED, 5xx
BOUNCED. The category says why, as finely as KumoMTA's bounce classes, in this order of trust:
a specific RFC 3463 enhanced code (5.1.1, 5.2.2, 5.7.26 ...), then the reply text (providers
answer "550 5.5.0 mailbox unavailable" for an unknown user, or "5.7.1 ... Spamhaus" for a block),
then the enhanced code's subject (x.4.x routing, x.7.x policy ...), then the basic code alone.

The bounce kind of a 5xx says whether the *address* is at fault: HARD (invalid_recipient,
bad_domain, disabled_mailbox, routing, relay_denied and unrecognised replies to RCPT) means stop
sending to it, and the event-publisher suppresses it. Everything else is SOFT even on a 5xx:
the temporary ones (quota, rate_limited, greylisted, connection, dns_failure, message_expired)
and those about this message or the sender rather than the recipient (spam_block, policy,
authentication, tls, protocol, content, message_too_large, bad_sender, too_many_recipients).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from services.common.avro.records import BounceKind

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_CODE = re.compile(r"^\s*[2-5]\d\d[ -]")


class Outcome(enum.Enum):
    DELIVERED = "DELIVERED"
    DEFERRED = "DEFERRED"
    BOUNCED = "BOUNCED"


CATEGORIES = frozenset(
    {
        "delivered",
        "invalid_recipient",
        "bad_domain",
        "disabled_mailbox",
        "quota",
        "message_too_large",
        "spam_block",
        "content",
        "policy",
        "authentication",
        "bad_sender",
        "relay_denied",
        "too_many_recipients",
        "routing",
        "dns_failure",
        "tls",
        "protocol",
        "rate_limited",
        "greylisted",
        "message_expired",
        "connection",
        "other",
    }
)
HARD_CATEGORIES = frozenset(
    {"invalid_recipient", "bad_domain", "disabled_mailbox", "routing", "relay_denied", "other"}
)


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    category: str
    bounce_kind: BounceKind | None = None
    # A "try again in N minutes" hint from the receiver, in seconds.
    retry_after_s: int | None = None


def enhanced_code(text: str) -> str | None:
    match = _ENHANCED.match(_LEADING_CODE.sub("", text, count=1))
    return ".".join(match.groups()) if match else None


# Enhanced codes specific enough to trust over the text, keyed by "subject.detail". Not x.1.10
# (null MX by RFC 7505, but Microsoft says 5.1.10 for an unknown user) nor x.4.1 (Microsoft
# 5.4.1 rejects recipients): the text decides those.
_EXACT: dict[str, str] = {
    "1.1": "invalid_recipient",
    "1.2": "bad_domain",
    "1.3": "invalid_recipient",
    "1.4": "invalid_recipient",
    "1.6": "disabled_mailbox",
    "1.7": "bad_sender",
    "1.8": "bad_sender",
    "2.1": "disabled_mailbox",
    "2.2": "quota",
    "2.3": "message_too_large",
    "2.4": "invalid_recipient",
    "3.1": "quota",
    "3.2": "connection",
    "3.4": "message_too_large",
    "3.5": "routing",
    "4.2": "connection",
    "4.3": "dns_failure",
    "4.4": "routing",
    "4.5": "rate_limited",
    "4.6": "routing",
    "4.7": "message_expired",
    "5.3": "too_many_recipients",
    "7.3": "tls",
    "7.4": "tls",
    "7.5": "tls",
    "7.6": "tls",
    "7.8": "authentication",
    "7.9": "authentication",
    "7.10": "tls",
    "7.11": "tls",
    "7.12": "authentication",
    "7.13": "disabled_mailbox",
    "7.14": "authentication",
    "7.16": "message_too_large",
    "7.17": "invalid_recipient",
    "7.18": "bad_domain",
    "7.20": "authentication",
    "7.21": "authentication",
    "7.22": "authentication",
    "7.23": "authentication",
    "7.24": "authentication",
    "7.25": "authentication",
    "7.26": "authentication",
    "7.27": "bad_sender",
    "7.28": "rate_limited",
    "7.29": "authentication",
    "7.30": "tls",
}
# When no specific code decided: the enhanced code's subject.
_SUBJECT = {
    "1": "invalid_recipient",
    "4": "routing",
    "5": "protocol",
    "6": "content",
    "7": "policy",
}


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Reply text, first match wins: the order settles overlaps ("DMARC policy" is authentication,
# "too many recipients" is not a rate, "domain does not exist" is not an unknown user).
_TEXT: tuple[tuple[re.Pattern[str], str], ...] = (
    (_rx(r"gr[ae]y ?list"), "greylisted"),
    (_rx(r"too many recipients"), "too_many_recipients"),
    (
        _rx(
            r"rate.?limit|too many (concurrent |simultaneous )?(connections|messages|mails|emails)"
            r"|throttl|unusual rate|sending rate|connection rate|too fast|slow down"
            r"|exceeded .{0,30}\b(rate|sending limit|connection limit)|unexpected volume"
        ),
        "rate_limited",
    ),
    (_rx(r"\b(spf|dkim|dmarc|arc)\b|authenticat|sender policy framework"), "authentication"),
    (_rx(r"\b(tls|ssl)\b|starttls|certificate|encryption (is )?required"), "tls"),
    (
        _rx(
            r"spam|block ?list|black ?list|\b(dns)?[rb]bl\b|blocked using|listed (at|on|in|by)"
            r"|spamhaus|spamcop|barracuda|sorbs|reputation|unsolicited|junk|banned"
        ),
        "spam_block",
    ),
    (
        _rx(
            r"relay(ing)? (access )?(denied|not (permitted|allowed))|unable to relay"
            r"|not permitted to relay|we do not relay|allowed rcpthosts"
        ),
        "relay_denied",
    ),
    (
        _rx(
            r"message (size|length|is too)|too (large|big)|size limit"
            r"|exceeds (the )?(maximum|fixed)"
        ),
        "message_too_large",
    ),
    (_rx(r"virus|malware|infected|attachment"), "content"),
    (
        _rx(
            r"mailbox (is )?full|over ?quota|quota|insufficient (system )?storage|storage (full"
            r"|allocation)|mailbox .{0,20}\bfull\b|out of (disk|storage)"
        ),
        "quota",
    ),
    (
        _rx(
            r"disabled|deactivated|inactive|suspended|account (has been |is )?"
            r"(closed|locked|expired|terminated|blocked)|no longer (active|available|in use)"
        ),
        "disabled_mailbox",
    ),
    (
        _rx(
            r"domain (name )?(does not exist|not found|unknown|is not valid)|no such domain"
            r"|unknown domain|host (or domain name )?not found|nxdomain|unrouteable|null mx"
            r"|does not accept mail"
        ),
        "bad_domain",
    ),
    (
        _rx(
            r"user unknown|unknown (user|recipient|mailbox|address)|no such (user|mailbox|recipient"
            r"|address|account|person)|does ?n[o']t (exist|have an? .{0,40}account)"
            r"|recipient (address )?(rejected|not found|unknown|invalid)|recipnotfound"
            r"|invalid (recipient|mailbox|address)|mailbox (unavailable|not found|does not exist)"
            r"|(address|user) (not found|rejected|unknown)|not a valid (mailbox|recipient|user)"
            r"|addressee unknown|bad destination mailbox|no mailbox|not our customer"
        ),
        "invalid_recipient",
    ),
    (
        _rx(r"sender (address )?(rejected|invalid|unknown|verify)|(invalid|unknown) sender"),
        "bad_sender",
    ),
    (_rx(r"dns|name ?server|servfail|lookup fail"), "dns_failure"),
    (
        _rx(r"connection (refused|reset|timed out|closed|lost)|timed out|timeout|no answer"),
        "connection",
    ),
    (_rx(r"expired|too old"), "message_expired"),
    (_rx(r"\bpolic(y|ies)\b|administrative|prohibited|not allowed|refused"), "policy"),
    (
        _rx(r"syntax|command (not |un)recogni[sz]ed|not implemented|bad sequence|line too long"),
        "protocol",
    ),
)
# The basic code alone, when nothing else said anything (RFC 5321, RFC 7504).
_BASIC = {
    421: "connection",
    452: "quota",
    500: "protocol",
    501: "protocol",
    502: "protocol",
    503: "protocol",
    504: "protocol",
    521: "bad_domain",
    530: "authentication",
    551: "invalid_recipient",
    552: "quota",
    553: "invalid_recipient",
    556: "bad_domain",
}
_CONNECTION_ERRORS = {
    "routing": "routing",
    "tls": "tls",
    "dns": "dns_failure",
    "authentication": "authentication",
}
_NOT_RCPT = frozenset({"mail", "data"})
# Failures before any reply that no retry can mend: the mail cannot travel to this host as is.
_PERMANENT_CONNECTION_ERRORS = {
    "smtputf8_unsupported": "protocol",  # RFC 6531 3.2: no downgrade of a non-ASCII address
}

_RETRY_HINT = _rx(
    r"(?:try(?: again)?|retry|again|wait|come back|resend|deferred)\s+(?:it\s+)?"
    r"(?:in|after|for)?\s*(\d{1,6})\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b"
)
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_MAX_RETRY_AFTER_S = 24 * 3600


def retry_after_s(text: str) -> int | None:
    """The receiver's "try again in N seconds/minutes/hours" hint, capped at a day."""
    match = _RETRY_HINT.search(text)
    if not match:
        return None
    unit = match.group(2).lower()
    seconds = int(match.group(1)) * _UNIT_S["m" if unit.startswith("mi") else unit[0]]
    return min(seconds, _MAX_RETRY_AFTER_S)


def category_of(code: int, text: str) -> str:
    """Why a non-2xx reply failed (see the module docstring for the order of trust)."""
    enhanced = enhanced_code(text)
    subject_detail = enhanced.split(".", 1)[1] if enhanced else None
    if subject_detail in _EXACT:
        return _EXACT[subject_detail]
    for pattern, category in _TEXT:
        if pattern.search(text):
            return category
    if enhanced and enhanced.split(".")[1] in _SUBJECT:
        return _SUBJECT[enhanced.split(".")[1]]
    return _BASIC.get(code, "other")


def classify(
    code: int | None,
    text: str = "",
    *,
    connection_error: str | None = None,
    stage: str | None = None,
) -> Classified:
    """code None means no reply was had (connection refused, timeout, TLS failure); a 4xx
    code with a connection_error is a host that refused us before any transaction. stage is
    the command a reply answered: a 5xx of no known cause after MAIL or DATA, once the
    recipient was accepted, says nothing against the address, so it bounces SOFT."""
    hint = retry_after_s(text)
    if code is not None and code < 500 and connection_error is not None:
        category = _CONNECTION_ERRORS.get(connection_error, "connection")
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    if code is None and connection_error in _PERMANENT_CONNECTION_ERRORS:
        category = _PERMANENT_CONNECTION_ERRORS[connection_error]
        return Classified(Outcome.BOUNCED, category, BounceKind.SOFT)
    if code is None:
        category = _CONNECTION_ERRORS.get(connection_error or "", "connection")
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    text = _LEADING_CODE.sub("", text, count=1)
    if 200 <= code < 300:
        return Classified(Outcome.DELIVERED, "delivered")
    category = category_of(code, text)
    if 500 <= code < 600:
        hard = category in HARD_CATEGORIES and not (category == "other" and stage in _NOT_RCPT)
        kind = BounceKind.HARD if hard else BounceKind.SOFT
        return Classified(Outcome.BOUNCED, category, kind, retry_after_s=hint)
    if 400 <= code < 500:
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    return Classified(Outcome.DEFERRED, "protocol")
