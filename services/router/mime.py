"""Building the RFC 5322 message from a validated request."""

from __future__ import annotations

import datetime as dt
import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime

from services.common.addresses import normalize_address
from services.common.avro.records import EmailRequested, Recipient


def message_id_header(request: EmailRequested, domain: str) -> str:
    """Stable across retries and redeliveries of the same request."""
    digest = hashlib.sha256(f"{request.tenant_id}\x1f{request.message_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def _address(address: str, name: str | None) -> Address:
    local, domain = address.rsplit("@", 1)
    return Address(display_name=name or "", username=local, domain=domain)


def _addresses(recipients: list[Recipient], accepted: frozenset[str]) -> list[Address]:
    """The recipients accepted for delivery, in the normalized form ingest validated: a
    rejected or suppressed address is never written into the message."""
    shown = []
    for r in recipients:
        normalized = normalize_address(r.address, allow_test_domains=True)
        if normalized is not None and normalized in accepted:
            shown.append(_address(normalized, r.name))
    return shown


def build_mime(
    request: EmailRequested,
    *,
    one_click_unsubscribe: bool = False,
    subject: str | None,
    text: str | None,
    html: str | None,
    accepted_at: int,
    recipients: list[str],
) -> bytes:
    """The message with CRLF line endings. To and Cc name only `recipients` (the accepted,
    normalized addresses); Bcc recipients are never written in a header. Every text here was
    validated by ingest or the renderer (no line breaks, no encoded newlines)."""
    sender_domain = request.from_address.rsplit("@", 1)[1]
    accepted = frozenset(recipients)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(request.from_address, request.from_name)
    to = _addresses(request.to, accepted)
    # RFC 5322 allows a message without To; an empty group says so to receivers that ask.
    msg["To"] = to if to else "undisclosed-recipients:;"
    cc = _addresses(request.cc, accepted)
    if cc:
        msg["Cc"] = cc
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
    needs_utf8 = not request.from_address.isascii() or any(
        not a.addr_spec.isascii() for a in [*to, *cc]
    )
    return _no_leading_dots(msg.as_bytes(policy=SMTPUTF8 if needs_utf8 else SMTP))


def _no_leading_dots(raw: bytes) -> bytes:
    """Every body line that starts with '.' gets it as the quoted-printable =2E: the text parts
    are quoted-printable and the rest base64, so this changes no decoded byte, yet no hop that
    mishandles dot-stuffing can ever read a lone '.' line as the end of DATA (SMTP smuggling)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if body.startswith(b"."):
        body = b"=2E" + body[1:]
    return head + sep + body.replace(b"\r\n.", b"\r\n=2E")


def has_https_unsubscribe(headers: dict[str, str]) -> bool:
    value = next((v for k, v in headers.items() if k.lower() == "list-unsubscribe"), "")
    return "<https://" in value
