"""Building the RFC 5322 message from a validated request."""

from __future__ import annotations

import datetime as dt
import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime

from services.common.avro.records import EmailRequested, Recipient


def message_id_header(request: EmailRequested, domain: str) -> str:
    """Stable across retries and redeliveries of the same request."""
    digest = hashlib.sha256(f"{request.tenant_id}\x1f{request.message_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def _address(address: str, name: str | None) -> Address:
    local, domain = address.rsplit("@", 1)
    return Address(display_name=name or "", username=local, domain=domain)


def _addresses(recipients: list[Recipient]) -> list[Address]:
    return [_address(r.address, r.name) for r in recipients]


def build_mime(
    request: EmailRequested,
    *,
    one_click_unsubscribe: bool = False,
    subject: str | None,
    text: str | None,
    html: str | None,
    accepted_at: int,
) -> bytes:
    """The message with CRLF line endings. Bcc recipients are never written in a header.
    Every text here was validated by ingest (no line breaks, no encoded newlines)."""
    sender_domain = request.from_address.rsplit("@", 1)[1]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(request.from_address, request.from_name)
    msg["To"] = _addresses(request.to)
    if request.cc:
        msg["Cc"] = _addresses(request.cc)
    if request.reply_to:
        msg["Reply-To"] = _address(request.reply_to, None)
    msg["Subject"] = subject or ""
    msg["Date"] = format_datetime(dt.datetime.fromtimestamp(accepted_at / 1000, tz=dt.UTC))
    msg["Message-ID"] = message_id_header(request, sender_domain)
    for name, value in request.headers.items():
        msg[name] = value
    if one_click_unsubscribe and "List-Unsubscribe-Post" not in msg:
        # RFC 8058: receivers may unsubscribe with a POST to the https URI, no page visit.
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if text is not None:
        msg.set_content(text, subtype="plain", cte="quoted-printable")
        if html is not None:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
    elif html is not None:
        msg.set_content(html, subtype="html", cte="quoted-printable")
    for attachment in request.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    needs_utf8 = any(
        not a.isascii()
        for a in [request.from_address, *(r.address for r in [*request.to, *request.cc])]
    )
    return msg.as_bytes(policy=SMTPUTF8 if needs_utf8 else SMTP)


def has_https_unsubscribe(headers: dict[str, str]) -> bool:
    value = next((v for k, v in headers.items() if k.lower() == "list-unsubscribe"), "")
    return "<https://" in value
