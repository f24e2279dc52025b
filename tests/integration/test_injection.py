"""Header, recipient and encoded-word injection never reaches the wire."""

from __future__ import annotations

import uuid
from email import message_from_bytes
from email.policy import default

import pytest

from services.client import EmailClient, new_request
from services.common.avro.records import EventType, Recipient
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for

FROM = "hello@acme.mailstream.test"
EVIL = "evil@inbox.mailstream.test"

ATTACKS: list[tuple[str, dict[str, object], str]] = [
    ("crlf in subject", {"subject": f"hi\r\nBcc: {EVIL}"}, "header_value_invalid"),
    (
        "encoded newline in subject (CVE-2024-6923)",
        {"subject": f"=?UTF-8?Q?hi=0ABcc:_{EVIL}?="},
        "header_value_invalid",
    ),
    (
        "base64 encoded newline in subject",
        {"subject": "=?utf-8?b?aGkKQmNjOiBldmlsQGluYm94Lm1haWxzdHJlYW0udGVzdA==?="},
        "header_value_invalid",
    ),
    ("crlf in from name", {"from_name": f"Eve\r\nBcc: {EVIL}"}, "header_value_invalid"),
    ("u2028 in from name", {"from_name": f"Eve\u2028Bcc: {EVIL}"}, "header_value_invalid"),
    ("crlf in extra header", {"headers": {"X-Tag": f"a\r\nBcc: {EVIL}"}}, "header_value_invalid"),
    ("structural header", {"headers": {"Bcc": EVIL}}, "header_not_allowed"),
    ("nul in header", {"headers": {"X-Tag": "a\x00b"}}, "header_value_invalid"),
    (
        "crlf in recipient name",
        {"to": [Recipient("bob@inbox.mailstream.test", f"Bob\r\nBcc: {EVIL}")]},
        "header_value_invalid",
    ),
]


@pytest.mark.parametrize(("label", "fields", "reason"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_injection_is_rejected(
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    label: str,
    fields: dict[str, object],
    reason: str,
) -> None:
    mid = f"inject-{uuid.uuid4().hex[:10]}"
    to = fields.pop("to", None)
    request = new_request(
        tenant_id="acme",
        from_address=FROM,
        to="bob@inbox.mailstream.test",
        message_id=mid,
        text_body="x",
        **fields,
    )  # type: ignore[arg-type]
    if to is not None:
        from dataclasses import replace

        request = replace(request, to=to)
    client.send(request)
    items = events.wait_for(label, lambda xs: bool(events_for(xs, mid)))
    (event,) = events_for(items, mid)
    assert (event.type, event.reason) == (EventType.REJECTED, reason)
    assert not any(mid.encode() in m.data for m in smtp.messages)


def test_recipient_smuggling_only_valid_recipients_reach_the_wire(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = f"smuggle-{uuid.uuid4().hex[:10]}"
    good = f"good-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    request = new_request(
        tenant_id="acme",
        from_address=FROM,
        to=good,
        message_id=mid,
        subject=f'Caf\u00e9 \u2014 "quotes", commas {mid}',
        from_name='Acme, "Inc"',
        text_body="line\r\n.\r\nQUIT\r\n",
        bcc=[
            Recipient(f"alice@inbox.mailstream.test)<{EVIL}>"),
            Recipient(f"x@inbox.mailstream.test\r\nRCPT TO:<{EVIL}>"),
            Recipient(f"{EVIL}\u200b"),
        ],
    )
    client.send(request)
    items = events.wait_for(
        "delivery", lambda xs: any(e.type is EventType.DELIVERED for e in events_for(xs, mid))
    )
    mine = events_for(items, mid)
    assert sorted((e.type.value, e.recipient) for e in mine if e.recipient != good) == sorted(
        ("REJECTED", r.address) for r in request.bcc
    )
    received = [m for m in smtp.messages if mid.encode() in m.data]
    assert len(received) == 1
    assert received[0].rcpt_tos == [good]
    msg = message_from_bytes(received[0].data, policy=default)
    assert sorted(msg.keys()) == sorted(
        [
            "DKIM-Signature",  # acme signs with RSA and Ed25519
            "DKIM-Signature",
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]
    )
    assert msg["Subject"] == request.subject
    assert msg["From"].addresses[0].display_name == 'Acme, "Inc"'
    assert EVIL.encode() not in received[0].data
    # The body's lone dot line was dot-stuffed on the wire and restored by the server.
    assert msg.get_content().replace("\r\n", "\n") == "line\n.\nQUIT\n"
