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
from services.common.reasons import Reason

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_CODE = re.compile(r"^\s*[2-5]\d\d[ -]")


class Outcome(enum.Enum):
    DELIVERED = "DELIVERED"
    DEFERRED = "DEFERRED"
    BOUNCED = "BOUNCED"


# "delivered" is the category (a metrics label) of a 2xx, never a reason code.
CATEGORIES = frozenset(
    {
        "delivered",
        Reason.INVALID_RECIPIENT,
        Reason.BAD_DOMAIN,
        Reason.DISABLED_MAILBOX,
        Reason.QUOTA,
        Reason.MESSAGE_TOO_LARGE,
        Reason.SPAM_BLOCK,
        Reason.CONTENT,
        Reason.POLICY,
        Reason.AUTHENTICATION,
        Reason.BAD_SENDER,
        Reason.RELAY_DENIED,
        Reason.TOO_MANY_RECIPIENTS,
        Reason.ROUTING,
        Reason.DNS_FAILURE,
        Reason.TLS,
        Reason.PROTOCOL,
        Reason.RATE_LIMITED,
        Reason.GREYLISTED,
        Reason.MESSAGE_EXPIRED,
        Reason.CONNECTION,
        Reason.OTHER,
    }
)
HARD_CATEGORIES = frozenset(
    {
        Reason.INVALID_RECIPIENT,
        Reason.BAD_DOMAIN,
        Reason.DISABLED_MAILBOX,
        Reason.ROUTING,
        Reason.RELAY_DENIED,
        Reason.OTHER,
    }
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
_EXACT: dict[str, Reason] = {
    "1.1": Reason.INVALID_RECIPIENT,
    "1.2": Reason.BAD_DOMAIN,
    "1.3": Reason.INVALID_RECIPIENT,
    "1.4": Reason.INVALID_RECIPIENT,
    "1.6": Reason.DISABLED_MAILBOX,
    "1.7": Reason.BAD_SENDER,
    "1.8": Reason.BAD_SENDER,
    "2.1": Reason.DISABLED_MAILBOX,
    "2.2": Reason.QUOTA,
    "2.3": Reason.MESSAGE_TOO_LARGE,
    "2.4": Reason.INVALID_RECIPIENT,
    "3.1": Reason.QUOTA,
    "3.2": Reason.CONNECTION,
    "3.4": Reason.MESSAGE_TOO_LARGE,
    "3.5": Reason.ROUTING,
    "4.2": Reason.CONNECTION,
    "4.3": Reason.DNS_FAILURE,
    "4.4": Reason.ROUTING,
    "4.5": Reason.RATE_LIMITED,
    "4.6": Reason.ROUTING,
    "4.7": Reason.MESSAGE_EXPIRED,
    "5.3": Reason.TOO_MANY_RECIPIENTS,
    "7.3": Reason.TLS,
    "7.4": Reason.TLS,
    "7.5": Reason.TLS,
    "7.6": Reason.TLS,
    "7.8": Reason.AUTHENTICATION,
    "7.9": Reason.AUTHENTICATION,
    "7.10": Reason.TLS,
    "7.11": Reason.TLS,
    "7.12": Reason.AUTHENTICATION,
    "7.13": Reason.DISABLED_MAILBOX,
    "7.14": Reason.AUTHENTICATION,
    "7.16": Reason.MESSAGE_TOO_LARGE,
    "7.17": Reason.INVALID_RECIPIENT,
    "7.18": Reason.BAD_DOMAIN,
    "7.20": Reason.AUTHENTICATION,
    "7.21": Reason.AUTHENTICATION,
    "7.22": Reason.AUTHENTICATION,
    "7.23": Reason.AUTHENTICATION,
    "7.24": Reason.AUTHENTICATION,
    "7.25": Reason.AUTHENTICATION,
    "7.26": Reason.AUTHENTICATION,
    "7.27": Reason.BAD_SENDER,
    "7.28": Reason.RATE_LIMITED,
    "7.29": Reason.AUTHENTICATION,
    "7.30": Reason.TLS,
}
# When no specific code decided: the enhanced code's subject.
_SUBJECT = {
    "1": Reason.INVALID_RECIPIENT,
    "4": Reason.ROUTING,
    "5": Reason.PROTOCOL,
    "6": Reason.CONTENT,
    "7": Reason.POLICY,
}


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Reply text, first match wins: the order settles overlaps ("DMARC policy" is authentication,
# "too many recipients" is not a rate, "domain does not exist" is not an unknown user).
_TEXT: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (_rx(r"gr[ae]y ?list"), Reason.GREYLISTED),
    (_rx(r"too many recipients"), Reason.TOO_MANY_RECIPIENTS),
    (
        _rx(
            r"rate.?limit|too many (concurrent |simultaneous )?(connections|messages|mails|emails)"
            r"|throttl|unusual rate|sending rate|connection rate|too fast|slow down"
            r"|exceeded .{0,30}\b(rate|sending limit|connection limit)|unexpected volume"
        ),
        Reason.RATE_LIMITED,
    ),
    (_rx(r"\b(spf|dkim|dmarc|arc)\b|authenticat|sender policy framework"), Reason.AUTHENTICATION),
    (_rx(r"\b(tls|ssl)\b|starttls|certificate|encryption (is )?required"), Reason.TLS),
    (
        _rx(
            r"spam|block ?list|black ?list|\b(dns)?[rb]bl\b|blocked using|listed (at|on|in|by)"
            r"|spamhaus|spamcop|barracuda|sorbs|reputation|unsolicited|junk|banned"
        ),
        Reason.SPAM_BLOCK,
    ),
    (
        _rx(
            r"relay(ing)? (access )?(denied|not (permitted|allowed))|unable to relay"
            r"|not permitted to relay|we do not relay|allowed rcpthosts"
        ),
        Reason.RELAY_DENIED,
    ),
    (
        _rx(
            r"message (size|length|is too)|too (large|big)|size limit"
            r"|exceeds (the )?(maximum|fixed)"
        ),
        Reason.MESSAGE_TOO_LARGE,
    ),
    (_rx(r"virus|malware|infected|attachment"), Reason.CONTENT),
    (
        _rx(
            r"mailbox (is )?full|over ?quota|quota|insufficient (system )?storage|storage (full"
            r"|allocation)|mailbox .{0,20}\bfull\b|out of (disk|storage)"
        ),
        Reason.QUOTA,
    ),
    (
        _rx(
            r"disabled|deactivated|inactive|suspended|account (has been |is )?"
            r"(closed|locked|expired|terminated|blocked)|no longer (active|available|in use)"
        ),
        Reason.DISABLED_MAILBOX,
    ),
    (
        _rx(
            r"domain (name )?(does not exist|not found|unknown|is not valid)|no such domain"
            r"|unknown domain|host (or domain name )?not found|nxdomain|unrouteable|null mx"
            r"|does not accept mail"
        ),
        Reason.BAD_DOMAIN,
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
        Reason.INVALID_RECIPIENT,
    ),
    (
        _rx(r"sender (address )?(rejected|invalid|unknown|verify)|(invalid|unknown) sender"),
        Reason.BAD_SENDER,
    ),
    (_rx(r"dns|name ?server|servfail|lookup fail"), Reason.DNS_FAILURE),
    (
        _rx(r"connection (refused|reset|timed out|closed|lost)|timed out|timeout|no answer"),
        Reason.CONNECTION,
    ),
    (_rx(r"expired|too old"), Reason.MESSAGE_EXPIRED),
    (_rx(r"\bpolic(y|ies)\b|administrative|prohibited|not allowed|refused"), Reason.POLICY),
    (
        _rx(r"syntax|command (not |un)recogni[sz]ed|not implemented|bad sequence|line too long"),
        Reason.PROTOCOL,
    ),
)
# The basic code alone, when nothing else said anything (RFC 5321, RFC 7504).
_BASIC = {
    421: Reason.CONNECTION,
    452: Reason.QUOTA,
    500: Reason.PROTOCOL,
    501: Reason.PROTOCOL,
    502: Reason.PROTOCOL,
    503: Reason.PROTOCOL,
    504: Reason.PROTOCOL,
    521: Reason.BAD_DOMAIN,
    530: Reason.AUTHENTICATION,
    551: Reason.INVALID_RECIPIENT,
    552: Reason.QUOTA,
    553: Reason.INVALID_RECIPIENT,
    556: Reason.BAD_DOMAIN,
}
_CONNECTION_ERRORS = {
    "routing": Reason.ROUTING,
    "tls": Reason.TLS,
    "dns": Reason.DNS_FAILURE,
    "authentication": Reason.AUTHENTICATION,
}
_NOT_RCPT = frozenset({"mail", "data"})
# Failures before any reply that no retry can mend: the mail cannot travel to this host as is.
_PERMANENT_CONNECTION_ERRORS = {
    "smtputf8_unsupported": Reason.PROTOCOL,  # RFC 6531 3.2: no downgrade of a non-ASCII address
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


def category_of(code: int, text: str) -> Reason:
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
    return _BASIC.get(code, Reason.OTHER)


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
        category = _CONNECTION_ERRORS.get(connection_error, Reason.CONNECTION)
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    if code is None and connection_error in _PERMANENT_CONNECTION_ERRORS:
        category = _PERMANENT_CONNECTION_ERRORS[connection_error]
        return Classified(Outcome.BOUNCED, category, BounceKind.SOFT)
    if code is None:
        category = _CONNECTION_ERRORS.get(connection_error or "", Reason.CONNECTION)
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    text = _LEADING_CODE.sub("", text, count=1)
    if 200 <= code < 300:
        return Classified(Outcome.DELIVERED, "delivered")
    category = category_of(code, text)
    if 500 <= code < 600:
        hard = category in HARD_CATEGORIES and not (category == Reason.OTHER and stage in _NOT_RCPT)
        kind = BounceKind.HARD if hard else BounceKind.SOFT
        return Classified(Outcome.BOUNCED, category, kind, retry_after_s=hint)
    if 400 <= code < 500:
        return Classified(Outcome.DEFERRED, category, retry_after_s=hint)
    return Classified(Outcome.DEFERRED, Reason.PROTOCOL)
