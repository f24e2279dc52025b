"""The direct MIME writer against what it must say: every
header, address and text part parses back, with the email package's own parser, to exactly
what was given; and a message the email package builds parses to the same."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_string
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import compat32, default
from email.utils import getaddresses

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.common.avro.records import EmailRequested, Recipient
from services.router.mime import build_mime, build_mime_with_email_package, write_mime

# What validation lets through: no controls, line or paragraph separators, or surrogates.
SAFE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
# Header text as a parser gives it back: no leading or trailing space, single spaces (a
# parser reads folding white space as one space, as RFC 5322 says it may).
WORDS = st.lists(st.text(SAFE.filter(lambda c: not c.isspace()), min_size=1, max_size=30),
                 min_size=1, max_size=12).map(" ".join)  # fmt: skip
NAMES = st.one_of(st.none(), WORDS)
ADDRESSES = st.sampled_from(
    ["bob@example.org", "bob.smith+tag@example.org", "jos\u00e9@example.org",
     "user@b\u00fccher.example", "o'brien@example.org", "x@sub.example.co.uk"]
)  # fmt: skip
BODY = st.lists(st.one_of(st.text(SAFE, max_size=90),
                          st.sampled_from(["\n", "\r\n", "\r", ".", " ", "\t", "=", "\n."])),
                max_size=60).map("".join)  # fmt: skip

BASE = EmailRequested(
    message_id="m-1",
    tenant_id="acme",
    from_address="hello@acme.example",
    from_name="Acme",
    to=[Recipient("bob@example.org", "Bob")],
    cc=[],
    requested_at=0,
    headers={},
)


def _parse(raw: bytes) -> EmailMessage:
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n")), "header line over 998"
    # SMTPUTF8 headers are UTF-8; the bytes parser would read them as ASCII with surrogates.
    msg = message_from_string(raw.decode("utf-8"), policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def _mailboxes(msg: EmailMessage, name: str) -> list[tuple[str, str]]:
    """Display names decoded as RFC 2047 says, white space between adjacent encoded words
    dropped (email.header does; the new parser keeps it inside a display name, and so reads
    a long name the email package builds itself with one space too many)."""
    raw = message_from_string(msg.as_string(), policy=compat32)[name]
    spaced = [(a.display_name, a.addr_spec) for a in msg[name].addresses]
    names = [str(make_header(decode_header(n))) for n, _ in getaddresses([str(raw)])]
    assert len(names) == len(spaced)
    return [(n, spec) for n, (_, spec) in zip(names, spaced, strict=True)]


def _texts(msg: EmailMessage) -> dict[str, str]:
    parts = [p for p in msg.walk() if not p.is_multipart()]
    return {
        p.get_content_subtype(): p.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
        for p in parts
    }


def _lines(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@settings(max_examples=300, deadline=None)
@given(
    from_name=NAMES,
    to=st.lists(st.tuples(ADDRESSES, NAMES), min_size=1, max_size=3, unique_by=lambda t: t[0]),
    subject=WORDS,
    # An X- value holding "=?" is passed on as is, as the email package does: readers decode it.
    x_value=WORDS.filter(lambda v: "=?" not in v),
    text=st.one_of(st.none(), BODY),
    html=st.one_of(st.none(), BODY),
)
@example(from_name='Bob "B" \\ Smith, Jr.', to=[("bob@example.org", "=?utf-8?q?x?=")],
         subject="x" * 200, x_value="y" * 990, text=".\n..", html=None)  # fmt: skip
def test_the_written_message_parses_back_to_what_was_given(
    from_name: str | None,
    to: list[tuple[str, str | None]],
    subject: str,
    x_value: str,
    text: str | None,
    html: str | None,
) -> None:
    if text is None and html is None:
        text = ""
    request = replace(
        BASE,
        from_name=from_name,
        to=[Recipient(address, name) for address, name in to],
        headers={"X-Campaign": x_value},
    )
    recipients = [address for address, _ in to]
    raw = write_mime(
        request, subject=subject, text=text, html=html, accepted_at=0, recipients=recipients
    )
    if raw is None:  # an unfoldable run over 998 octets: the email package takes it
        assert max(len(w.encode()) for w in x_value.split(" ")) > 900
        return
    msg = _parse(raw)
    assert _mailboxes(msg, "From") == [(from_name or "", "hello@acme.example")]
    assert _mailboxes(msg, "To") == [(name or "", address) for address, name in to]
    assert msg["Subject"] == subject
    assert msg["X-Campaign"] == x_value
    expected = {k: _lines(v) for k, v in (("plain", text), ("html", html)) if v is not None}
    assert _texts(msg) == expected
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert not body.startswith(b".") and b"\r\n." not in body  # no SMTP end-of-data lookalike
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))  # RFC 2045


def test_both_builders_say_the_same_of_a_typical_message() -> None:
    request = replace(
        BASE,
        from_name="Acme Support",
        to=[Recipient("bob@example.org", "Bob Smith"), Recipient("jos\u00e9@example.org")],
        cc=[Recipient("carol@example.org", "Carol, Sales")],
        reply_to="help@acme.example",
        headers={"List-Unsubscribe": "<https://acme.example/u/1>", "X-Order": "1234"},
    )
    arguments = dict(
        subject="Your order 1234 has shipped \u2014 arriving Friday",
        text="Hello Bob,\n\nYour order has shipped.\n" * 20,
        html="<p>Hello <b>Bob</b></p>\n" * 20,
        accepted_at=1_764_547_200_000,
        recipients=["bob@example.org", "jos\u00e9@example.org", "carol@example.org"],
        one_click_unsubscribe=True,
    )
    ours = _parse(build_mime(request, **arguments))  # type: ignore[arg-type]
    theirs = _parse(build_mime_with_email_package(request, **arguments))  # type: ignore[arg-type]
    for name in ("From", "To", "Cc", "Reply-To"):
        assert _mailboxes(ours, name) == _mailboxes(theirs, name)
    for name in ("Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
                 "X-Order", "MIME-Version"):  # fmt: skip
        assert ours[name] == theirs[name], name
    assert ours.get_content_type() == theirs.get_content_type() == "multipart/alternative"
    assert _texts(ours) == _texts(theirs)
    assert [k for k, _ in ours.items()] == [k for k, _ in theirs.items()][: len(ours.items())]


FILENAMES = st.one_of(
    st.text(SAFE.filter(lambda c: c not in "/\\"), min_size=1, max_size=120).filter(
        lambda n: n.strip() and "=?" not in n and n not in {".", ".."}
    ),
    st.sampled_from(["r.pdf", 'a "quoted" \\ name.txt', "\u00fcbersicht 2026.xlsx", "x" * 255]),
)
ATTACHMENTS = st.lists(
    st.tuples(FILENAMES, st.sampled_from(["application/pdf", "text/csv; charset=utf-8",
                                          "image/png", "application/octet-stream"]),
              st.binary(max_size=300)),
    min_size=1, max_size=3,
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    subject=WORDS,
    text=st.one_of(st.none(), BODY),
    html=st.one_of(st.none(), BODY),
    attachments=ATTACHMENTS,
)
@example(subject="=?utf-8?q?hi?=", text="t", html=None,
         attachments=[("r.pdf", "application/pdf", b"%PDF")])  # fmt: skip
def test_attachments_parse_back_to_their_names_types_and_bytes(
    subject: str,
    text: str | None,
    html: str | None,
    attachments: list[tuple[str, str, bytes]],
) -> None:
    from services.common.avro.records import Attachment

    request = replace(BASE, attachments=[Attachment(*a) for a in attachments])
    raw = build_mime(request, subject=subject, text=text, html=html, accepted_at=0,
                     recipients=["bob@example.org"])  # fmt: skip
    msg = _parse(raw)
    assert msg["Subject"] == subject  # the email package would decode "=?utf-8?q?hi?=" here
    assert msg.get_content_type() == "multipart/mixed"
    found = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    ]
    # The email package drops white space around a filename, quoted or RFC 2231 encoded
    # alike; the writer keeps the name as given (test_a_filename_is_written_as_given).
    assert found == [
        (name.strip(), kind.split(";")[0], content) for name, kind, content in attachments
    ]
    expected = {k: _lines(v) for k, v in (("plain", text), ("html", html)) if v is not None}
    texts = {
        p.get_content_subtype(): p.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
        for p in msg.walk()
        if not p.is_multipart() and p.get_content_disposition() != "attachment"
    }
    assert texts == expected
    body = raw.split(b"\r\n\r\n", 1)[1]
    # Part headers (RFC 2231 filename pieces included) fold to 78, base64 and QP lines are 76.
    assert all(len(line) <= 78 for line in body.split(b"\r\n")), "a body line over 78"
    assert not body.startswith(b".") and b"\r\n." not in body


def test_a_message_with_attachments_says_what_the_email_package_says() -> None:
    from services.common.avro.records import Attachment

    request = replace(
        BASE,
        attachments=[
            Attachment("r.pdf", "application/pdf", b"%PDF-1.7" * 40),
            Attachment("\u00fcbersicht.csv", "text/csv; charset=utf-8", b"a,b\r\n1,2\r\n"),
        ],
    )
    arguments = dict(subject="Your invoice", text="See attached.\n", html="<p>See</p>\n",
                     accepted_at=1_764_547_200_000, recipients=["bob@example.org"])  # fmt: skip
    ours = _parse(build_mime(request, **arguments))  # type: ignore[arg-type]
    theirs = _parse(build_mime_with_email_package(request, **arguments))  # type: ignore[arg-type]
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert ours[name] == theirs[name], name

    def shape(msg: EmailMessage) -> list[tuple[str, str | None, bytes | None]]:
        return [
            (p.get_content_type(), p.get_filename(), p.get_payload(decode=True)) for p in msg.walk()
        ]

    assert shape(ours)[1:] == shape(theirs)[1:]


def test_a_line_break_never_becomes_a_header_line() -> None:
    """What ingest refuses, should it reach the writer anyway: a filename is percent-encoded
    (RFC 2231) whatever it holds; a line break in any other header value raises, so the
    record is quarantined rather than written with a header of the requester's."""
    import pytest

    from services.common.avro.records import Attachment

    named = replace(BASE, attachments=[Attachment("a.txt\r\nBcc: v@x.example", "text/plain", b"x")])
    raw = build_mime(named, subject="s", text="t", html=None, accepted_at=0,
                     recipients=["bob@example.org"])  # fmt: skip
    assert b"\r\nBcc:" not in raw
    (part,) = _parse(raw).iter_attachments()
    assert part.get_filename() == "a.txt\r\nBcc: v@x.example"
    typed = replace(BASE, attachments=[Attachment("a.txt", "text/plain\r\nBcc: v@x.example", b"x")])
    for request, subject in ((typed, "s"), (BASE, "s\r\nBcc: v@x.example")):
        with pytest.raises(ValueError, match="line break"):
            build_mime(request, subject=subject, text="t", html=None, accepted_at=0,
                       recipients=["bob@example.org"])  # fmt: skip


def test_a_filename_is_written_as_given() -> None:
    from services.common.avro.records import Attachment

    names = {" a ": b'filename=" a "', "\u00e9 ": b"filename*=utf-8''%C3%A9%20"}
    for name, written in names.items():
        request = replace(BASE, attachments=[Attachment(name, "application/pdf", b"")])
        raw = build_mime(request, subject="s", text=None, html=None, accepted_at=0,
                         recipients=["bob@example.org"])  # fmt: skip
        assert b"Content-Disposition: attachment; " + written + b"\r\n" in raw
