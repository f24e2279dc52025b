"""What the SMTP server captured, checked against what ingest validated: one home for the wire
inspection of the security corpus and the generative fuzz test."""

from __future__ import annotations

import json
import re
from collections import Counter
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.policy import default as default_policy
from typing import Any, Protocol

import yaml
from email_validator import EmailNotValidError, validate_email

from services.common.avro.records import EmailEvent, EmailRequested, EventType
from services.common.priority import Priority
from services.router.mime import message_id_header
from tests.integration.harness import RecordingSmtp
from tests.stack import TENANTS_YAML

# Every address a request tries to inject has a local part starting with one of these.
# (At the start of a local part: "good%evil.example@host" is one ordinary address.)
MARKERS = re.compile(r"(?i)(?<![\w.+%!-])(evil|smuggled)[\w.+-]*@")
TOP_HEADERS = {
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "dkim-signature",
}
ONCE = TOP_HEADERS - {"dkim-signature"}
PART_HEADERS = {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
SMTP_VERBS = rb"(?:MAIL FROM|RCPT TO|DATA|BDAT|QUIT|RSET|EHLO|HELO|NOOP)"
UNSAFE_CHARS = re.compile("[\r\n\x00\u2028\u2029\x85]")


class Sent(Protocol):
    """One request as the wire check sees it; the check adds to `messages` and `wire`."""

    request: EmailRequested | None
    events: list[EmailEvent]
    messages: int  # captured messages matched to this request
    wire: list[str]  # what is wrong with them

    @property
    def priority(self) -> Priority: ...

    @property
    def body_contains(self) -> tuple[str, ...]: ...

    @property
    def body_lacks(self) -> tuple[str, ...]: ...


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def _normalized_address(address: str) -> str | None:
    try:
        result = validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    return str(result.normalized)


def _tenant_domains() -> dict[str, set[str]]:
    spec = yaml.safe_load(TENANTS_YAML)
    return {
        t["id"]: {d["domain"].lower() for d in t.get("sender_domains", [])} for t in spec["tenants"]
    }


def parse_message(data: bytes) -> EmailMessage:
    if data.isascii():
        message = BytesParser(policy=default_policy).parsebytes(data)
    else:  # SMTPUTF8: raw UTF-8 headers, which BytesParser would leave as surrogates
        message = Parser(policy=default_policy).parsestr(data.decode("utf-8"))
    assert isinstance(message, EmailMessage)
    return message


def wire_problems(out: Sent, data: bytes, rcpt_tos: list[str], mail_from: str) -> list[str]:
    """Everything wrong with one captured message of a request."""
    problems = []
    request = out.request
    assert request is not None
    accepted = {
        e.recipient.lower() for e in out.events if e.type is EventType.ACCEPTED and e.recipient
    }
    if re.search(rb"\r(?!\n)|(?<!\r)\n", data):
        problems.append("a bare CR or LF in the message (a lenient server may end DATA there)")
    if b"\x00" in data:
        problems.append("a NUL byte in the message")
    if len(rcpt_tos) != 1 or rcpt_tos[0].lower() not in accepted:
        problems.append(f"envelope recipients {rcpt_tos} are not one accepted recipient")
    if MARKERS.search(mail_from) or any(MARKERS.search(r) for r in rcpt_tos):
        problems.append(f"an injected envelope address: {mail_from} -> {rcpt_tos}")
    message = parse_message(data)
    allowed = TOP_HEADERS | {k.lower() for k in request.headers}
    if out.priority is Priority.BULK:
        allowed.add("list-unsubscribe-post")
    names = [k.lower() for k in message]
    for name in sorted(set(names) - allowed):
        problems.append(f"header {name!r} is not one ingest allows (injected?)")
    for name, count in Counter(names).items():
        if name in ONCE and count > 1:
            problems.append(f"header {name!r} appears {count} times")
    header_block = data.split(b"\r\n\r\n", 1)[0]
    if MARKERS.search(header_block.decode("utf-8", "replace")):
        problems.append("an injected address in the header block")
    for name, value in message.items():
        if UNSAFE_CHARS.search(str(value)):
            problems.append(f"header {name} decodes to a line break or NUL: {str(value)[:80]!r}")
    for part in list(message.walk())[1:]:
        for name in sorted({k.lower() for k in part} - PART_HEADERS):
            problems.append(f"MIME part header {name!r} (injected?)")
    domains = _tenant_domains().get(request.tenant_id, set())
    sender = message["From"]
    addresses = list(getattr(sender, "addresses", ())) if sender is not None else []
    if (
        len(addresses) != 1
        or addresses[0].addr_spec.lower() != request.from_address.lower()
        or addresses[0].domain.lower() not in domains
    ):
        shown = [a.addr_spec for a in addresses]
        problems.append(f"From {shown} is not the validated sender in a verified domain")
    for name in ("To", "Cc"):
        header = message[name]
        if header is None:
            continue
        for address in header.addresses:
            if address.addr_spec.lower() not in accepted:
                problems.append(f"{name} holds {address.addr_spec!r}, not an accepted recipient")
    if request.reply_to is not None and message["Reply-To"] is not None:
        wanted = _normalized_address(request.reply_to)
        shown = [a.addr_spec for a in message["Reply-To"].addresses]
        if wanted is None or [s.lower() for s in shown] != [wanted.lower()]:
            problems.append(f"Reply-To {shown} is not the validated {wanted!r}")
    templated = request.template is not None
    if not templated and request.subject is not None and str(message["Subject"]) != request.subject:
        problems.append("Subject on the wire differs from the requested one")
    problems += _body_problems(out, message, data)
    return problems


def part_header_problems(data: bytes) -> list[str]:
    """What the headers of a message's MIME parts hide: a value or parameter that decodes
    (RFC 2047 or RFC 2231) to a line break or NUL, or an injected address. The fuzz test's
    addition: attachments are where a request names part headers (filename, content type)."""
    problems = []
    for part in list(parse_message(data).walk())[1:]:
        for name, value in part.items():
            params = getattr(value, "params", {})
            decoded = [str(value), *(str(v) for v in params.values())]
            if any(UNSAFE_CHARS.search(text) for text in decoded):
                problems.append(f"part header {name} decodes to a line break or NUL")
            if any(MARKERS.search(text) for text in decoded):
                problems.append(f"an injected address in part header {name}")
    return problems


def _body_problems(out: Sent, message: EmailMessage, data: bytes) -> list[str]:
    request = out.request
    assert request is not None
    problems = []
    given = [request.text_body, request.html_body, *_strings(request.template_data_json)]
    sent = "\n".join(_normal(b) for b in given if b)
    for match in re.finditer(rb"\r\n\.\r\n(" + SMTP_VERBS + rb")", data, re.IGNORECASE):
        verb = match.group(1).decode().upper()
        if f"\n.\n{verb}" not in "\n" + sent.upper():
            problems.append(f"a lone '.' line followed by {verb} that the request never held")
    bodies = {}
    for part in message.walk():
        if part.get_content_maintype() == "text" and part.get_filename() is None:
            bodies[part.get_content_subtype()] = _normal(str(part.get_content()))
    if request.template is None:
        for subtype, wanted in (("plain", request.text_body), ("html", request.html_body)):
            if wanted is not None and bodies.get(subtype) != _normal(wanted):
                problems.append(f"the text/{subtype} body did not arrive intact")
    everything = "\n".join(bodies.values())
    for needle in out.body_contains:
        if needle not in everything:
            problems.append(f"the body lacks {needle!r}")
    for needle in out.body_lacks:
        if needle in everything:
            problems.append(f"the body holds {needle!r}")
    return problems


def _strings(data_json: str | None) -> list[str]:
    """The string values of a request's template data: what a rendered body may hold (none
    when it is no JSON at all: such data renders nothing)."""
    try:
        data = json.loads(data_json) if data_json else None
    except (ValueError, RecursionError):
        return []
    found: list[str] = []
    pending: list[Any] = [data]
    while pending:  # not recursive: template data may nest deeper than Python's stack
        value = pending.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            pending.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            pending.extend(reversed(value))
    return found


def inspect_wire(
    outcomes: list[Sent], smtp: RecordingSmtp, *, part_headers: bool = False
) -> list[str]:
    """Matches captured messages to requests by their Message-ID; returns global problems.
    part_headers: also check what the MIME parts' headers decode to."""
    by_header: dict[str, Sent] = {}
    for out in outcomes:
        if out.request is not None:
            domain = out.request.from_address.rsplit("@", 1)[-1]
            by_header[message_id_header(out.request, domain)] = out
    problems = []
    for received in smtp.messages:
        match = re.search(rb"(?im)^Message-ID:\s*(<[^>\r\n]*>)", received.data)
        out = by_header.get(match.group(1).decode()) if match else None
        if MARKERS.search(received.mail_from) or any(MARKERS.search(r) for r in received.rcpt_tos):
            problems.append(f"smuggled transaction {received.mail_from} -> {received.rcpt_tos}")
        if out is None:
            continue
        out.messages += 1
        out.wire += wire_problems(out, received.data, received.rcpt_tos, received.mail_from)
        if part_headers:
            out.wire += part_header_problems(received.data)
    for out in outcomes:
        delivered = sum(e.type is EventType.DELIVERED for e in out.events)
        if out.messages != delivered:
            out.wire.append(f"{out.messages} messages captured for {delivered} DELIVERED events")
    return problems
