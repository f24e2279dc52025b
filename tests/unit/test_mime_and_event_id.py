from email import message_from_bytes
from email.policy import default

from services.common.avro.records import EmailRequested, EventType, Recipient, StatusUpdate
from services.common.priority import Priority
from services.common.status import event_id
from services.router.mime import build_mime

REQ = EmailRequested(
    message_id="m-1",
    tenant_id="acme",
    from_address="hello@acme.example",
    from_name="Acme",
    to=[Recipient("bob@example.org", "Bob")],
    cc=[Recipient("carol@example.org")],
    bcc=[Recipient("secret@example.org")],
    requested_at=0,
    subject="Hi",
    headers={"X-Campaign": "c1"},
)
ALL = ["bob@example.org", "carol@example.org", "secret@example.org"]


def test_mime_has_crlf_no_bcc_and_a_stable_message_id() -> None:
    raw = build_mime(
        REQ, subject="Hi", text="hello", html="<p>hello</p>", accepted_at=1000, recipients=ALL
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"secret@example.org" not in raw
    msg = message_from_bytes(raw, policy=default)
    assert msg["To"] == "Bob <bob@example.org>"
    assert msg["Cc"] == "carol@example.org"
    assert msg["X-Campaign"] == "c1"
    assert msg.get_content_type() == "multipart/alternative"
    again = build_mime(
        REQ, subject="Hi", text="hello", html="<p>hello</p>", accepted_at=1000, recipients=ALL
    )
    assert message_from_bytes(again, policy=default)["Message-ID"] == msg["Message-ID"]


def test_event_id_is_deterministic_and_distinguishes_steps() -> None:
    base = dict(
        message_id="m", tenant_id="t", priority=Priority.BULK, occurred_at=1, recipient="a@b.c"
    )
    first = StatusUpdate(type=EventType.DEFERRED, attempt=1, **base)  # type: ignore[arg-type]
    again = StatusUpdate(type=EventType.DEFERRED, attempt=1, **{**base, "occurred_at": 9})  # type: ignore[arg-type]
    later = StatusUpdate(type=EventType.DEFERRED, attempt=2, **base)  # type: ignore[arg-type]
    assert event_id(first) == event_id(again)
    assert event_id(first) != event_id(later)


def test_bulk_with_an_https_unsubscribe_gets_one_click() -> None:
    from dataclasses import replace

    from services.router.mime import has_https_unsubscribe

    req = replace(REQ, headers={"List-Unsubscribe": "<https://acme.example/u/1>"})
    assert has_https_unsubscribe(req.headers)
    raw = build_mime(
        req,
        subject="s",
        text="t",
        html=None,
        accepted_at=0,
        recipients=ALL,
        one_click_unsubscribe=True,
    )
    msg = message_from_bytes(raw, policy=default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not has_https_unsubscribe({"List-Unsubscribe": "<mailto:u@acme.example>"})


def test_only_accepted_recipients_are_named_in_their_normalized_form() -> None:
    from dataclasses import replace

    req = replace(
        REQ,
        to=[
            Recipient("bob@example\uff0eorg", "Bob"),  # IDNA maps U+FF0E to "."
            Recipient("alice@example.org)<evil@example.org>"),
            Recipient("alice"),
            Recipient("x@example.org\r\nRCPT TO:<evil@example.org>"),
        ],
        cc=[Recipient("carol@example.org"), Recipient("alice@example.org" + "(" * 3000)],
    )
    raw = build_mime(req, subject="s", text="t", html=None, accepted_at=0, recipients=ALL[:2])
    assert b"evil" not in raw and b"alice" not in raw
    msg = message_from_bytes(raw, policy=default)
    assert msg["To"] == "Bob <bob@example.org>"
    assert msg["Cc"] == "carol@example.org"
    only_cc = build_mime(
        req, subject="s", text="t", html=None, accepted_at=0, recipients=["carol@example.org"]
    )
    assert message_from_bytes(only_cc, policy=default)["To"] == "undisclosed-recipients:;"


def test_no_body_line_starts_with_a_dot_yet_the_text_decodes_unchanged() -> None:
    text = ".first\nBob\n.\nMAIL FROM:<x@y.z>\n..\n" + "a" * 75 + ".b\n"
    html = "<p>.</p>\n.\n"
    raw = build_mime(REQ, subject="s", text=text, html=html, accepted_at=0, recipients=ALL)
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert not body.startswith(b".") and b"\r\n." not in body
    msg = message_from_bytes(raw, policy=default)
    parts = {p.get_content_subtype(): p.get_content() for p in msg.walk() if not p.is_multipart()}
    crlf = {k: v.replace("\r\n", "\n") for k, v in parts.items()}
    assert crlf["plain"] == text and crlf["html"] == html
