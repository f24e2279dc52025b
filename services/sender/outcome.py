"""One pure function from an SMTP reply (or a failure to get one) to a delivery outcome."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from services.common.avro.records import BounceKind

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class Outcome(enum.Enum):
    DELIVERED = "DELIVERED"
    DEFERRED = "DEFERRED"
    BOUNCED = "BOUNCED"


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    category: str
    bounce_kind: BounceKind | None = None


def enhanced_code(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else None


# (enhanced status prefix, category), most specific first; RFC 3463 subjects and details.
_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("5.1.1", "invalid_recipient"),
    ("5.1.10", "invalid_recipient"),
    ("5.1.2", "bad_domain"),
    ("5.1.3", "invalid_recipient"),
    ("5.1.6", "invalid_recipient"),
    ("5.1.8", "bad_sender"),
    ("5.2.1", "disabled_mailbox"),
    ("5.2.2", "quota"),
    ("5.2.3", "message_too_large"),
    ("5.3.4", "message_too_large"),
    ("5.4.", "routing"),
    ("5.5.", "protocol"),
    ("5.6.", "content"),
    ("5.7.1", "policy"),
    ("5.7.26", "authentication"),
    ("5.7.", "policy"),
    ("4.2.2", "quota"),
    ("4.4.", "routing"),
    ("4.7.", "policy"),
)
_TEXT_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"spam|blocklist|blacklist|block list|reputation", re.I), "spam_block"),
    (
        re.compile(r"user unknown|no such user|does not exist|unknown recipient", re.I),
        "invalid_recipient",
    ),
    (re.compile(r"mailbox full|over quota|quota exceeded", re.I), "quota"),
    (re.compile(r"too large|size limit", re.I), "message_too_large"),
)


def _category(code: int, enhanced: str | None, text: str) -> str:
    if enhanced:
        for prefix, category in _CATEGORIES:
            if enhanced == prefix or (prefix.endswith(".") and enhanced.startswith(prefix)):
                return category
    for pattern, category in _TEXT_HINTS:
        if pattern.search(text):
            return category
    if code == 552:
        return "message_too_large"
    if code == 421:
        return "connection"
    return "other"


def classify(
    code: int | None, text: str = "", *, connection_error: str | None = None
) -> Classified:
    """code None means no reply was had (connection refused, timeout, TLS failure)."""
    if code is None:
        return Classified(Outcome.DEFERRED, connection_error or "connection")
    enhanced = enhanced_code(text)
    category = _category(code, enhanced, text)
    if 200 <= code < 300:
        return Classified(Outcome.DELIVERED, "delivered")
    if 400 <= code < 500:
        return Classified(Outcome.DEFERRED, category)
    if 500 <= code < 600:
        # A full mailbox is often temporary whatever code the receiver chose.
        kind = BounceKind.SOFT if category in ("quota", "spam_block", "policy") else BounceKind.HARD
        return Classified(Outcome.BOUNCED, category, kind)
    return Classified(Outcome.DEFERRED, "protocol")
