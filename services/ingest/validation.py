"""Request validation: a pure function from a request and its tenant to a verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.common.addresses import normalize_address
from services.common.avro.records import EmailRequested
from services.common.header_text import unsafe_text
from services.common.tenants import Tenant
from services.ingest import reasons
from services.ingest.headers_policy import header_allowed

MAX_MESSAGE_ID = 128
MAX_TO = 50
# The contract bounds To only; Cc and Bcc are bounded too, so one request cannot fan out to
# thousands of deliveries (each recipient gets its own SMTP transaction and events).
MAX_RECIPIENTS = 100
_MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True)
class Verdict:
    """rejected_reason set: the whole request is refused. Otherwise recipients are the
    normalized addresses to deliver to, and invalid ones are listed with their reason."""

    rejected_reason: str | None = None
    detail: str = ""
    recipients: list[str] = field(default_factory=list)
    invalid_recipients: list[tuple[str, str]] = field(default_factory=list)


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

    if not _MESSAGE_ID.match(request.message_id):
        return Verdict(reasons.MESSAGE_ID_INVALID, "1 to 128 printable ASCII characters")
    if encoded_size > max_bytes:
        return Verdict(reasons.REQUEST_TOO_LARGE, f"{encoded_size} > {max_bytes} bytes")
    if tenant is None:
        return Verdict(reasons.TENANT_UNKNOWN, request.tenant_id)
    sender = normalize(request.from_address)
    if sender is None:
        return Verdict(reasons.SENDER_INVALID, "from_address is not a valid address")
    if sender.rsplit("@", 1)[1].lower() not in tenant.sender_domains:
        return Verdict(reasons.SENDER_NOT_PERMITTED, "from_address domain not verified for tenant")
    if request.reply_to is not None and normalize(request.reply_to) is None:
        return Verdict(reasons.SENDER_INVALID, "reply_to is not a valid address")
    if not request.to:
        return Verdict(reasons.RECIPIENTS_MISSING, "to is empty")
    if len(request.to) > MAX_TO:
        return Verdict(reasons.RECIPIENTS_TOO_MANY, f"{len(request.to)} > {MAX_TO}")
    total = len(request.to) + len(request.cc) + len(request.bcc)
    if total > MAX_RECIPIENTS:
        return Verdict(reasons.RECIPIENTS_TOO_MANY, f"to, cc and bcc: {total} > {MAX_RECIPIENTS}")
    if request.template is None and request.text_body is None and request.html_body is None:
        return Verdict(reasons.CONTENT_MISSING, "no template, text_body or html_body")
    if bulk and not any(k.lower() == "list-unsubscribe" for k in request.headers):
        # Bulk mail without one-click unsubscribe is refused by Gmail and Yahoo (2024 rules).
        return Verdict(reasons.LIST_UNSUBSCRIBE_MISSING, "bulk mail needs List-Unsubscribe")
    for name, value in request.headers.items():
        if not header_allowed(name):
            return Verdict(reasons.HEADER_NOT_ALLOWED, name[:80])
        if unsafe_text(value):
            return Verdict(reasons.HEADER_VALUE_INVALID, name[:80])
    texts = [
        request.subject,
        request.from_name,
        *(r.name for r in [*request.to, *request.cc, *request.bcc]),
    ]
    if any(t is not None and unsafe_text(t) for t in texts):
        return Verdict(reasons.HEADER_VALUE_INVALID, "line break or control character in a header")
    recipients: list[str] = []
    invalid: list[tuple[str, str]] = []
    for r in [*request.to, *request.cc, *request.bcc]:
        normalized = normalize(r.address)
        if normalized is None:
            invalid.append((r.address, reasons.RECIPIENT_INVALID))
        elif normalized not in recipients:
            recipients.append(normalized)
    return Verdict(recipients=recipients, invalid_recipients=invalid)
