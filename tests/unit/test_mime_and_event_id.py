from email import message_from_bytes
from email.policy import default

from services.common.avro.records import EmailRequested, EventType, Recipient, StatusUpdate
from services.common.priority import Priority
from services.event_publisher.event_id import event_id
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


def test_mime_has_crlf_no_bcc_and_a_stable_message_id() -> None:
    raw = build_mime(REQ, subject="Hi", text="hello", html="<p>hello</p>", accepted_at=1000)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"secret@example.org" not in raw
    msg = message_from_bytes(raw, policy=default)
    assert msg["To"] == "Bob <bob@example.org>"
    assert msg["Cc"] == "carol@example.org"
    assert msg["X-Campaign"] == "c1"
    assert msg.get_content_type() == "multipart/alternative"
    again = build_mime(REQ, subject="Hi", text="hello", html="<p>hello</p>", accepted_at=1000)
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
        req, subject="s", text="t", html=None, accepted_at=0, one_click_unsubscribe=True
    )
    msg = message_from_bytes(raw, policy=default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not has_https_unsubscribe({"List-Unsubscribe": "<mailto:u@acme.example>"})
