"""Property: every attachment ingest accepts builds, in the router, into a part that parses
back to exactly its filename, media type and bytes, with no header it did not ask for."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes, message_from_string
from email.message import EmailMessage
from email.policy import default

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.avro.records import Attachment, EmailRequested, Recipient
from services.common.tenants import Tenant
from services.ingest.validation import validate
from services.router.mime import build_mime

TENANT = Tenant(tenant_id="acme", sender_domains=frozenset({"acme.example"}))
BASE = EmailRequested(
    message_id="m-1",
    tenant_id="acme",
    from_address="hello@acme.example",
    to=[Recipient("bob@example.org")],
    requested_at=0,
    text_body="hi",
)
PART_HEADERS = {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TRICKY = st.sampled_from(
    ["\r", "\n", "\r\n", "\x00", "\t", "\u2028", "\u202e", "=?", "?=", "?q?", "=0A", '"', "\\",
     ";", "=", " ", "'", "%", "*", "/", ".", "(", ")", "é", "日本", "👍", "Bcc: x@y.z"]
)  # fmt: skip
# Printable text of any script, as most real names are; and text biased towards breaking them.
_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))
filenames = st.one_of(
    st.text(_PRINTABLE, min_size=1, max_size=40),
    st.lists(st.one_of(_TRICKY, st.text(max_size=6)), min_size=1, max_size=16).map("".join),
)
_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,12}", fullmatch=True)
_VALUE = st.one_of(  # RFC 2231 attribute-chars, and RFC 2045 tokens
    st.from_regex(r"[!#$&+\-.0-9A-Z^_`a-z{|}~]{1,12}", fullmatch=True),
    st.from_regex(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,12}", fullmatch=True),
)
_GRAMMAR = st.builds(
    lambda t, s, ps: f"{t}/{s}" + "".join(f"; {n}={v}" for n, v in ps),
    _NAME,
    _NAME,
    st.lists(st.tuples(_NAME, _VALUE), max_size=3),
)
content_types = st.one_of(
    _GRAMMAR,
    st.builds(lambda a, b: a + b, _GRAMMAR, st.lists(_TRICKY, max_size=3).map("".join)),
    st.lists(st.one_of(_TRICKY, st.text(max_size=6)), max_size=8).map("".join),
)
attachments = st.builds(
    Attachment, filename=filenames, content_type=content_types, content=st.binary(max_size=64)
)


def _parse(raw: bytes) -> EmailMessage:
    # SMTPUTF8 messages carry raw UTF-8 headers, which message_from_bytes leaves as surrogates.
    if raw.isascii():
        return message_from_bytes(raw, policy=default)
    return message_from_string(raw.decode("utf-8"), policy=default)


@FAST
@given(
    attached=st.lists(attachments, min_size=1, max_size=3),
    to=st.sampled_from(["bob@example.org", "bü@example.org"]),
)
def test_accepted_attachments_build_into_exactly_what_was_asked(
    attached: list[Attachment], to: str
) -> None:
    request = replace(BASE, to=[Recipient(to)], attachments=attached)
    verdict = validate(request, TENANT, encoded_size=100, max_bytes=10**6)
    if verdict.rejected_reason is not None:
        return
    raw = build_mime(
        request, subject="s", text="hi", html=None, accepted_at=0, recipients=verdict.recipients
    )
    parts = list(_parse(raw).iter_attachments())
    assert len(parts) == len(attached)
    for part, sent in zip(parts, attached, strict=True):
        assert {name.lower() for name in part} <= PART_HEADERS
        disposition = part["content-disposition"]
        assert disposition.content_disposition == "attachment"
        assert disposition.params["filename"] == sent.filename
        media, *parameters = sent.content_type.split(";")
        assert part.get_content_type() == media.strip().lower()
        asked = dict(p.strip().split("=", 1) for p in parameters)
        assert dict(part["content-type"].params) == {k.lower(): v for k, v in asked.items()}
        assert part.get_payload(decode=True) == sent.content


def test_a_non_ascii_filename_is_written_per_rfc_2231() -> None:
    request = replace(BASE, attachments=[Attachment("résumé.pdf", "application/pdf", b"%PDF")])
    assert validate(request, TENANT, encoded_size=100, max_bytes=10**6).rejected_reason is None
    raw = build_mime(
        request, subject="s", text="hi", html=None, accepted_at=0, recipients=["bob@example.org"]
    )
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9.pdf" in raw
