"""Request validation: a pure function from a request and its tenant to a verdict."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.addresses import normalize_address
from services.common.avro.records import Attachment, EmailRequested
from services.common.header_text import unsafe_text
from services.common.reasons import Reason
from services.common.tenants import Tenant
from services.ingest.headers_policy import header_allowed

MAX_MESSAGE_ID = 128
MAX_TO = 50
# The contract bounds To only; Cc and Bcc are bounded too, so one request cannot fan out to
# thousands of deliveries (each recipient gets its own SMTP transaction and events).
MAX_RECIPIENTS = 100
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,128}")  # fullmatch: "$" would let one final LF in

# Each attachment is one MIME part the router builds through the email package; 20 is more
# than transactional mail carries and bounds the parts a receiver has to scan.
MAX_ATTACHMENTS = 20
# Attachments are base64 in the built message (4/3, plus CRLF every 76 characters), so 4 MiB
# of content builds to about 5.5 MiB, under the router's default 6 MiB max_message_bytes. At
# the default 900 KiB request limit request_too_large refuses first; this bound holds when an
# operator raises that limit, so ingest refuses what the router could only reject later.
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024
MAX_FILENAME = 255  # characters: the usual file system limit on one name
MAX_CONTENT_TYPE = 255  # RFC 6838 allows 127 characters each for type and subtype
MAX_CONTENT_TYPE_PARAMETERS = 4
# Tags are echoed on every EmailEvent of the message and stored with it, so they are bounded
# and kept to text that logs, CSV exports and analytics read back unchanged.
MAX_TAGS = 32
MAX_TAG_VALUE = 256
_TAG_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Timestamps are epoch milliseconds from 1970 to the end of year 9999, the range every date
# library (and an email's Date header) can show; a long outside it is no instant.
MAX_TIMESTAMP_MS = 253_402_300_799_999
_DETAIL = 80  # characters of a client's text quoted in a verdict's detail

# RFC 6838 4.2 restricted-name, for types, subtypes and parameter names (no "*": an RFC 2231
# extended parameter is refused, not decoded). Parameter values are RFC 2045 tokens of RFC 2231
# attribute-chars: no quoted strings (so no "=?" encoded word, no escapes) and none of "*'%",
# which the email package reads as RFC 2231 syntax, dropping the parameter it writes.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_TOKEN = r"[!#$&+\-.0-9A-Z^_`a-z{|}~]+"
_PARAMETER = re.compile(f" *; *({_NAME})=({_TOKEN})")
_CONTENT_TYPE = re.compile(f"({_NAME})/({_NAME})((?:{_PARAMETER.pattern})*)")
# The router base64-encodes every attachment, which RFC 2046 forbids for these: a multipart
# needs its boundary and parts in the clear, a message/* body may only be 7bit, 8bit or binary.
_CONTAINER_TYPES = {"multipart", "message"}
# Control (Cc), format (Cf: bidi overrides that make "invoice\u202efdp.exe" read as a PDF,
# zero-width characters), surrogate (Cs) and line and paragraph separator characters.
_NOT_IN_FILENAMES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_NOT_IN_TAGS = {"Cc", "Cs", "Zl", "Zp"}


@dataclass(frozen=True)
class Verdict:
    """rejected_reason set: the whole request is refused. Otherwise recipients are the
    normalized addresses to deliver to, and invalid ones are listed with their reason."""

    rejected_reason: Reason | None = None
    detail: str = ""
    recipients: list[str] = field(default_factory=list)
    invalid_recipients: list[tuple[str, Reason]] = field(default_factory=list)


def validate(
    request: EmailRequested,
    tenant: Tenant | None,
    *,
    encoded_size: int,
    max_bytes: int,
    allow_test_domains: bool = False,
    bulk: bool = False,
) -> Verdict:
    def normalize(address: str) -> str | None:
        return normalize_address(address, allow_test_domains=allow_test_domains)

    if not _MESSAGE_ID.fullmatch(request.message_id):
        return Verdict(Reason.MESSAGE_ID_INVALID, "1 to 128 printable ASCII characters")
    for name in ("requested_at", "send_at", "expires_at"):
        at = getattr(request, name)
        if at is not None and not 0 <= at <= MAX_TIMESTAMP_MS:
            return Verdict(Reason.TIMESTAMP_INVALID, f"{name}: {at} is not 1970 to 9999 in ms")
    if encoded_size > max_bytes:
        return Verdict(Reason.REQUEST_TOO_LARGE, f"{encoded_size} > {max_bytes} bytes")
    if tenant is None:
        return Verdict(Reason.TENANT_UNKNOWN, request.tenant_id)
    sender = normalize(request.from_address)
    if sender is None:
        return Verdict(Reason.SENDER_INVALID, "from_address is not a valid address")
    if sender.rsplit("@", 1)[1].lower() not in tenant.sender_domains:
        return Verdict(Reason.SENDER_NOT_PERMITTED, "from_address domain not verified for tenant")
    if request.reply_to is not None and normalize(request.reply_to) is None:
        return Verdict(Reason.SENDER_INVALID, "reply_to is not a valid address")
    if not request.to:
        return Verdict(Reason.RECIPIENTS_MISSING, "to is empty")
    if len(request.to) > MAX_TO:
        return Verdict(Reason.RECIPIENTS_TOO_MANY, f"{len(request.to)} > {MAX_TO}")
    total = len(request.to) + len(request.cc) + len(request.bcc)
    if total > MAX_RECIPIENTS:
        return Verdict(Reason.RECIPIENTS_TOO_MANY, f"to, cc and bcc: {total} > {MAX_RECIPIENTS}")
    if request.template is None and request.text_body is None and request.html_body is None:
        return Verdict(Reason.CONTENT_MISSING, "no template, text_body or html_body")
    if bulk and not any(k.lower() == "list-unsubscribe" for k in request.headers):
        # Bulk mail without one-click unsubscribe is refused by Gmail and Yahoo (2024 rules).
        return Verdict(Reason.LIST_UNSUBSCRIBE_MISSING, "bulk mail needs List-Unsubscribe")
    for name, value in request.headers.items():
        if not header_allowed(name):
            return Verdict(Reason.HEADER_NOT_ALLOWED, _clip(name))
        if unsafe_text(value):
            return Verdict(Reason.HEADER_VALUE_INVALID, _clip(name))
    texts = [
        request.subject,
        request.from_name,
        *(r.name for r in [*request.to, *request.cc, *request.bcc]),
    ]
    if any(t is not None and unsafe_text(t) for t in texts):
        return Verdict(Reason.HEADER_VALUE_INVALID, "line break or control character in a header")
    refused = _attachments_refused(request.attachments) or _tags_refused(request.tags)
    if refused is not None:
        return refused
    recipients: list[str] = []
    invalid: list[tuple[str, Reason]] = []
    for r in [*request.to, *request.cc, *request.bcc]:
        normalized = normalize(r.address)
        if normalized is None:
            invalid.append((r.address, Reason.RECIPIENT_INVALID))
        elif normalized not in recipients:
            recipients.append(normalized)
    return Verdict(recipients=recipients, invalid_recipients=invalid)


def _attachments_refused(attachments: list[Attachment]) -> Verdict | None:
    if len(attachments) > MAX_ATTACHMENTS:
        return Verdict(Reason.ATTACHMENTS_TOO_MANY, f"{len(attachments)} > {MAX_ATTACHMENTS}")
    total = sum(len(a.content) for a in attachments)
    if total > MAX_ATTACHMENT_BYTES:
        return Verdict(Reason.ATTACHMENTS_TOO_LARGE, f"{total} > {MAX_ATTACHMENT_BYTES} bytes")
    for i, attachment in enumerate(attachments):
        problem = _filename_problem(attachment.filename)
        if problem is not None:
            return Verdict(Reason.ATTACHMENT_INVALID, f"attachments[{i}].filename: {problem}")
        problem = _content_type_problem(attachment.content_type)
        if problem is not None:
            return Verdict(Reason.ATTACHMENT_INVALID, f"attachments[{i}].content_type: {problem}")
    return None


def _filename_problem(name: str) -> str | None:
    """Any text a person would call a file name, non-ASCII included (the router writes it as
    RFC 2231 parameter continuations); never a path, a control or an invisible character."""
    if len(name) > MAX_FILENAME:
        return f"{len(name)} > {MAX_FILENAME} characters"
    found = _first_of(name, _NOT_IN_FILENAMES)
    if found is not None:
        return f"{found}, a control, format or line separator character"
    if not name.strip():
        return "empty"
    if "/" in name or "\\" in name or name in {".", ".."}:
        return "a path, not a file name"
    if "=?" in name:
        # RFC 2047 5: no encoded word in a Content-Disposition parameter. The email package
        # decodes one anyway, and writes a decoded CR LF as a new header line of the part.
        return "'=?', the start of an RFC 2047 encoded word; send the text itself"
    return None


def _content_type_problem(value: str) -> str | None:
    """type/subtype per RFC 6838, optionally with token-valued RFC 2045 parameters."""
    if len(value) > MAX_CONTENT_TYPE:
        return f"{len(value)} > {MAX_CONTENT_TYPE} characters"
    found = _CONTENT_TYPE.fullmatch(value)
    if found is None:
        return f"not a type/subtype media type: {_clip(value)}"
    if found[1].lower() in _CONTAINER_TYPES:
        return f"{found[1].lower()}/* cannot be sent as a base64 attachment"
    names = [name.lower() for name, _ in _PARAMETER.findall(found[3])]
    if len(names) > MAX_CONTENT_TYPE_PARAMETERS:
        return f"{len(names)} > {MAX_CONTENT_TYPE_PARAMETERS} parameters"
    if len(set(names)) < len(names):
        return "a parameter given twice"
    if "name" in names:
        # Some readers show Content-Type's name over the filename: one name, the validated one.
        return "a name parameter; the filename field names the attachment"
    return None


def _tags_refused(tags: Mapping[str, str]) -> Verdict | None:
    if len(tags) > MAX_TAGS:
        return Verdict(Reason.TAGS_TOO_MANY, f"{len(tags)} > {MAX_TAGS}")
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key):
            return Verdict(Reason.TAG_INVALID, f"key {_clip(key)}: 1 to 64 of A-Z a-z 0-9 _ . : -")
        if len(value) > MAX_TAG_VALUE:
            return Verdict(Reason.TAG_INVALID, f"{key}: {len(value)} > {MAX_TAG_VALUE} characters")
        found = _first_of(value, _NOT_IN_TAGS)
        if found is not None:
            return Verdict(Reason.TAG_INVALID, f"{key}: {found}, a control or line separator")
    return None


def _first_of(text: str, categories: set[str]) -> str | None:
    """The first character of text in one of the Unicode categories, as U+XXXX."""
    found = next((c for c in text if unicodedata.category(c) in categories), None)
    return None if found is None else f"U+{ord(found):04X}"


def _clip(text: str) -> str:
    """A client's text for a log line: escaped (no control character reaches the log) and cut."""
    shown = ascii(text)
    return shown if len(shown) <= _DETAIL else shown[: _DETAIL - 3] + "..."
