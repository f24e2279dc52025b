"""Building the RFC 5322 message from a validated request.

Messages are written directly: the `email` package parses and refolds every header through
its header registry, 1.4 ms of a 4 KB two-part message, most of the router's CPU per message,
and it decodes what looks like an encoded word in a value it is given, so a Subject of
"=?utf-8?q?hi?=" would reach the reader as "hi". The `email` package builds only a message
with a header word too long to fold under 998 octets. tests/unit/test_mime_writer.py checks
with hypothesis that both give messages that parse to the same headers, addresses and parts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import urllib.parse
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime

from services.common.addresses import normalize_address
from services.common.avro.records import Attachment, EmailRequested, Recipient


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
    if text is not None or html is not None or request.attachments:
        written = write_mime(
            request,
            one_click_unsubscribe=one_click_unsubscribe,
            subject=subject,
            text=text,
            html=html,
            accepted_at=accepted_at,
            recipients=recipients,
        )
        if written is not None:
            return written
    return build_mime_with_email_package(
        request,
        one_click_unsubscribe=one_click_unsubscribe,
        subject=subject,
        text=text,
        html=html,
        accepted_at=accepted_at,
        recipients=recipients,
    )


def build_mime_with_email_package(
    request: EmailRequested,
    *,
    one_click_unsubscribe: bool = False,
    subject: str | None,
    text: str | None,
    html: str | None,
    accepted_at: int,
    recipients: list[str],
) -> bytes:
    """build_mime through email.message.EmailMessage: any message, attachments included."""
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


# --- the direct writer -------------------------------------------------------------------

_FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998
_MAX_LINE = 998
_ATOM_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_NOT_ATEXT = r"\x00-\x20\x7f()<>\[\]:;@\\,.\""  # RFC 5322 specials, space and controls
_DOT_ATOM = re.compile(f"[^{_NOT_ATEXT}]+(?:\\.[^{_NOT_ATEXT}]+)*")
_WORD_BYTES = 45  # 60 base64 characters: an encoded word of 72, under RFC 2047's 75
# Characters of a filename per RFC 2231 continuation: " filename*12*=utf-8''" and 54 fit
# in a line of 78.
_RFC2231_PIECE = 54
_LONG_WORD = 900  # a Subject word this long is written as encoded words, so it folds


def write_mime(
    request: EmailRequested,
    *,
    one_click_unsubscribe: bool = False,
    subject: str | None,
    text: str | None,
    html: str | None,
    accepted_at: int,
    recipients: list[str],
) -> bytes | None:
    """build_mime written directly; None when a header cannot be folded under 998 octets
    (a single word that long), for the email package."""
    accepted = frozenset(recipients)
    to = _shown(request.to, accepted)
    cc = _shown(request.cc, accepted)
    sender_domain = request.from_address.rsplit("@", 1)[1]
    headers: list[tuple[str, str]] = [
        ("From", _mailbox(request.from_address, request.from_name)),
        ("To", ", ".join(to) if to else "undisclosed-recipients:;"),
    ]
    if cc:
        headers.append(("Cc", ", ".join(cc)))
    if request.reply_to:
        headers.append(("Reply-To", _mailbox(request.reply_to, None)))
    headers.append(("Subject", _unstructured(subject or "", literal=True)))
    headers.append(
        ("Date", format_datetime(dt.datetime.fromtimestamp(accepted_at / 1000, tz=dt.UTC)))
    )
    headers.append(("Message-ID", message_id_header(request, sender_domain)))
    headers.extend((name, _unstructured(value)) for name, value in request.headers.items())
    if one_click_unsubscribe and not any(
        n.lower() == "list-unsubscribe-post" for n in request.headers
    ):
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers.append(("MIME-Version", "1.0"))
    boundary = _boundary(request, accepted_at)
    parts = [(kind, body) for kind, body in (("plain", text), ("html", html)) if body is not None]
    content = _text_content(parts, boundary + "_a") if parts else None
    if not request.attachments:
        assert content is not None  # build_mime comes here with a text, an html or both
        part_headers, payload = content
    else:
        part_headers = [("Content-Type", f'multipart/mixed; boundary="{boundary}"')]
        chunks = []
        if content is not None:
            chunks.append(_part(boundary, *content))
        for attachment in request.attachments:
            chunks.append(_part(boundary, _attachment_headers(attachment), _base64(attachment)))
        chunks.append(f"--{boundary}--\r\n".encode("ascii"))
        payload = b"".join(chunks)
    head = _head([*headers, *part_headers])
    if head is None:
        return None
    return _no_leading_dots(head + b"\r\n" + payload)


def _head(headers: list[tuple[str, str]]) -> bytes | None:
    """The header lines, folded; None when one cannot fold. A value holding a line break
    raises ValueError (so does the email package): ingest and the renderer refuse those, and
    a record that gets here with one anyway is quarantined, never written as a new header."""
    lines = []
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"a line break in the {name} header")
        folded = _fold(f"{name}: {value}")
        if folded is None:
            return None
        lines.append(folded)
    return "".join(lines).encode("utf-8")


def _part(boundary: str, headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One body part of a multipart: its delimiter line, headers, blank line, payload and
    the line end that belongs to the next delimiter."""
    head = _head(headers)
    assert head is not None  # part headers are short: types, tokens, RFC 2231 pieces
    return f"--{boundary}\r\n".encode("ascii") + head + b"\r\n" + payload + b"\r\n"


def _text_content(
    parts: list[tuple[str, str]], boundary: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and payload of the text: one quoted-printable part, or plain and html as
    a multipart/alternative."""
    if len(parts) == 1:
        kind, body = parts[0]
        return _text_part_headers(kind), _quoted_printable(body)
    chunks = [_part(boundary, _text_part_headers(kind), _quoted_printable(body))
              for kind, body in parts]  # fmt: skip
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    content_type = f'multipart/alternative; boundary="{boundary}"'
    return [("Content-Type", content_type)], b"".join(chunks)


def _attachment_headers(attachment: Attachment) -> list[tuple[str, str]]:
    """The validated media type as given (type/subtype and token parameters), base64, and
    the filename: quoted when ASCII, else RFC 2231 UTF-8 percent-encoded in continuations
    short enough to fold."""
    maintype, _, rest = attachment.content_type.partition("/")
    content_type = f"{maintype or 'application'}/{rest or 'octet-stream'}"
    name = attachment.filename
    if name.isascii() and all(c.isprintable() for c in name) and len(name) <= _RFC2231_PIECE:
        disposition = f"attachment; filename={_quoted(name)}"
    else:
        pieces = [""]
        for char in name:  # split between characters, never inside one's octets
            quoted = urllib.parse.quote(char.encode("utf-8"), safe="")
            if len(pieces[-1]) + len(quoted) > _RFC2231_PIECE:
                pieces.append("")
            pieces[-1] += quoted
        if len(pieces) == 1:
            disposition = f"attachment; filename*=utf-8''{pieces[0]}"
        else:
            pieces[0] = "utf-8''" + pieces[0]  # the charset only on the first
            disposition = "attachment; " + "; ".join(
                f"filename*{i}*={piece}" for i, piece in enumerate(pieces)
            )
    return [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", disposition),
    ]


def _base64(attachment: Attachment) -> bytes:
    """RFC 2045 base64: lines of 76 characters, CRLF-terminated."""
    encoded = base64.b64encode(attachment.content)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)] or [b""]
    return b"\r\n".join(lines)


def _shown(recipients: list[Recipient], accepted: frozenset[str]) -> list[str]:
    shown = []
    for r in recipients:
        normalized = normalize_address(r.address, allow_test_domains=True)
        if normalized is not None and normalized in accepted:
            shown.append(_mailbox(normalized, r.name))
    return shown


def _mailbox(address: str, name: str | None) -> str:
    local, domain = address.rsplit("@", 1)
    if not _DOT_ATOM.fullmatch(local):
        local = _quoted(local)
    spec = f"{local}@{domain}"
    if not name:
        return spec
    return f"{_phrase(name)} <{spec}>"


def _phrase(name: str) -> str:
    """A display name: as is when it is plain atoms, quoted when other ASCII; else its atoms as
    they are and the rest as encoded words (also a name holding "=?", which readers would
    decode even inside quotes)."""
    if name.isascii() and "=?" not in name:
        return name if _ATOM_TEXT.fullmatch(name) else _quoted(name)
    return _mixed(name, lambda word: bool(_ATOM_TEXT.fullmatch(word)) and "=?" not in word)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unstructured(value: str, *, literal: bool = False) -> str:
    """An unstructured value: ASCII words as they are, runs of other words as encoded words;
    with `literal` (the Subject) a word holding "=?" is encoded too, so readers show it as
    written, and so is a word too long to fold, or white space a parser would not keep."""

    def plain(word: str) -> bool:
        return word.isascii() and not (literal and ("=?" in word or len(word) > _LONG_WORD))

    if value.isascii() and not literal:
        return value
    if literal and (value != value.strip() or "  " in value or "\t" in value):
        # A parser reads folding white space as one space and drops it at the ends: inside
        # encoded words every space and tab is kept as written.
        return _encoded_words(value)
    if value.isascii() and "=?" not in value and len(value) <= _LONG_WORD:
        return value  # the usual Subject: no word to encode, skip the split
    return _mixed(value, plain)


def _mixed(value: str, plain: Callable[[str], bool]) -> str:
    """Words for which `plain` holds as they are, each run of the others (the spaces between
    them included) as encoded words; the spaces between the two kinds stay as they are."""
    out: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if plain(word):
            if run:
                out.append(_encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.append(_encoded_words(" ".join(run)))
    return " ".join(out)


def _encoded_words(text: str) -> str:
    """RFC 2047 B encoded words of whole characters, each at most 75 characters long, joined
    by spaces (which a decoder drops between adjacent encoded words)."""
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk or not words:
        words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _fold(line: str) -> str | None:
    """The header line folded before spaces to lines of at most 78 characters where it can
    be, CRLF-terminated; None when some unbreakable run exceeds 998 octets."""
    if len(line) <= _FOLD_AT:
        return line + "\r\n"
    out: list[str] = []
    current = ""
    for i, word in enumerate(line.split(" ")):
        if i == 0:
            current = word
        elif i > 1 and len(current) + 1 + len(word) > _FOLD_AT and current.strip():
            # never right after "Name:", where a parser would keep the fold's space
            out.append(current)
            current = " " + word
        else:
            current = current + " " + word
    out.append(current)
    if any(len(piece.encode("utf-8")) > _MAX_LINE for piece in out):
        return None
    return "\r\n".join(out) + "\r\n"


def _text_part_headers(kind: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", f'text/{kind}; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]


def _quoted_printable(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends, lines of at most 76 characters (RFC 2045)
    none of which starts with '.'; CR, LF and CRLF alike end a line, as the email package has
    them; the text ends with a line end. binascii encodes; the rare line it leaves too long
    (it can reach 77) or starting with '.' is wrapped again here."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    lines = binascii.b2a_qp(text.encode("utf-8"), istext=True).split(b"\n")
    if any(len(line) > _QP_LINE or line.startswith(b".") for line in lines):
        lines = [piece for line in lines for piece in _rewrap(line)]
    return b"\r\n".join(lines)


_QP_LINE = 76
_QP_TOKEN = re.compile(rb"=[0-9A-F]{2}|.", re.S)


def _rewrap(line: bytes) -> list[bytes]:
    """One encoded line as lines of at most 76 characters, split between tokens (an =XX is
    one) with soft breaks, none starting with '.'."""
    if len(line) <= _QP_LINE and not line.startswith(b"."):
        return [line]
    soft = line.endswith(b"=")  # binascii writes a literal '=' as =3D: this is a soft break
    tokens = _QP_TOKEN.findall(line[:-1] if soft else line)
    pieces: list[bytes] = []
    current = b""
    for token in tokens:
        if not current and token == b".":
            token = b"=2E"
        if len(current) + len(token) > _QP_LINE - 1:  # room for the soft break's '='
            pieces.append(current + b"=")
            current = b"=2E" if token == b"." else token
        else:
            current += token
    pieces.append(current + b"=" if soft else current)
    return pieces


def _boundary(request: EmailRequested, accepted_at: int) -> str:
    """Stable for the message; '=_' occurs in no quoted-printable or base64 text."""
    seed = f"{request.tenant_id}\x1f{request.message_id}\x1f{accepted_at}".encode()
    return "=_ms_" + hashlib.sha256(seed).hexdigest()[:28]
