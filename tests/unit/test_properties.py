"""Property-based tests (hypothesis) of what bad input can reach: the Avro decoder, address and
header-text validation, request validation and the MIME builder. Each property is one that a
single counter-example would break: never an unexpected exception, never an unsafe header."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
from email import message_from_bytes, message_from_string
from email.policy import default
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.addresses import normalize_address
from services.common.avro.codec import AvroCodec
from services.common.avro.records import (
    AcceptedRequest,
    DeliveryTask,
    EmailEvent,
    EmailRequested,
    Recipient,
    StatusUpdate,
    TemplateRef,
)
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.config import REPO_ROOT
from services.common.errors import UndecodableRecord
from services.common.header_text import unsafe_text
from services.common.tenants import Tenant
from services.ingest.validation import validate
from services.mail.render import _spec_width
from services.router.mime import build_mime

SERDE = RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=REPO_ROOT / "schemas")))
HEADER = SERDE.encode(
    EmailRequested(message_id="m", tenant_id="t", from_address="a@b.example", to=[], requested_at=0)
)[:10]
TENANT = Tenant(tenant_id="acme", sender_domains=frozenset({"acme.example"}))
# Every character str.splitlines() breaks at, which the email package refuses in a header.
UNSAFE = set("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text biased towards what breaks parsers: separators, encoded-word syntax, address syntax.
_TRICKY = st.sampled_from(
    ["\r", "\n", "\r\n", "\x00", "\x1e", "\x0b", "\x7f", "\u2028", "\u2029", "\x85", "=?",
     "?=", "?q?", "?b?", "=0A", "=0D", "utf-8", "@", "<", ">", "(", ")", ",", ";", ":", '"',
     "\\", ".", " ", "\t", "é",
     "\u202e", "\u200b", "xn--", "%", "!", "Bcc: x@y.z"]
)  # fmt: skip
tricky_text = st.lists(st.one_of(_TRICKY, st.text(max_size=8)), max_size=12).map("".join)
addresses = st.one_of(
    tricky_text,
    st.builds(lambda a, b: f"{a}@{b}", tricky_text, tricky_text),
    st.emails().map(str),
)


def _record(**fields: object) -> EmailRequested:
    base = dict(
        message_id="m-1",
        tenant_id="acme",
        from_address="hello@acme.example",
        to=[Recipient("bob@example.org")],
        requested_at=0,
        text_body="hi",
    )
    return EmailRequested(**{**base, **fields})  # type: ignore[arg-type]


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_a_request_or_an_undecodable_record(data: bytes) -> None:
    for candidate in (data, HEADER + data):
        with contextlib.suppress(UndecodableRecord):
            SERDE.decode(EmailRequested, candidate)


@FAST
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=400))
def test_a_valid_request_cut_or_spliced_never_crashes_the_decoder(junk: bytes, at: int) -> None:
    valid = SERDE.encode(_record(subject="s", tags={"k": "v"}))
    for candidate in (valid[:at], valid[:at] + junk, valid + junk):
        with contextlib.suppress(UndecodableRecord):
            SERDE.decode(EmailRequested, candidate)


@FAST
@given(
    subject=st.none() | st.text(max_size=50),
    names=st.lists(st.none() | st.text(max_size=20), min_size=1, max_size=3),
    tags=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    locale=st.none() | st.text(max_size=10),
)
def test_requests_round_trip_through_avro(
    subject: str | None, names: list[str | None], tags: dict[str, str], locale: str | None
) -> None:
    request = _record(
        subject=subject,
        to=[Recipient(f"u{i}@example.org", n) for i, n in enumerate(names)],
        tags=tags,
        template=TemplateRef("t", 3, locale),
    )
    assert SERDE.decode(EmailRequested, SERDE.encode(request)) == request


_INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Any text a producer can encode: surrogates are not UTF-8.
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


def _every_field(cls: type) -> st.SearchStrategy:
    """Any record of the class, ints as wide as the schema's int or long allows and optional
    fields drawn both absent and present, nested records and lists included."""
    # (Not registered strategies for int and str: they would leak into every other test.)
    schema = json.loads((REPO_ROOT / "schemas" / f"{cls.AVRO_NAME}.avsc").read_text())  # type: ignore[attr-defined]
    ints = {f["name"] for f in schema["fields"] if "int" in _types(f["type"])}
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: _of(hints[f.name], _INT if f.name in ints else _LONG)
        for f in dataclasses.fields(cls)
    }
    return st.builds(cls, **fields)


def _types(avro_type: Any) -> list[Any]:
    return avro_type if isinstance(avro_type, list) else [avro_type]


def _of(hint: Any, ints: st.SearchStrategy) -> st.SearchStrategy:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | _of(inner, ints)
    if origin is list:
        return st.lists(_of(typing.get_args(hint)[0], ints), max_size=2)
    if origin is dict:
        return st.dictionaries(_TEXT, _TEXT, max_size=2)
    if hint is int:
        return ints
    if hint is str:
        return _TEXT
    if dataclasses.is_dataclass(hint):
        return _every_field(hint)
    return st.from_type(hint)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_record_round_trips_through_avro(data: st.DataObject) -> None:
    """Each twin's encoder and decoder, built once per class from its fields' types, carry
    every field: nested records, lists of them, enums, bytes and absent optionals."""
    for cls in (EmailRequested, AcceptedRequest, DeliveryTask, EmailEvent, StatusUpdate):
        record = data.draw(_every_field(cls))
        assert SERDE.decode(cls, SERDE.encode(record)) == record


@FAST
@given(tricky_text)
def test_unsafe_text_never_raises_and_finds_every_raw_separator(value: str) -> None:
    found = unsafe_text(value)
    if UNSAFE & set(value):
        assert found


@FAST
@given(addresses)
def test_a_normalized_address_is_safe_single_and_stable(address: str) -> None:
    normalized = normalize_address(address, allow_test_domains=True)
    if normalized is None:
        return
    assert not unsafe_text(normalized) and not UNSAFE & set(normalized)
    assert normalized.count("@") == 1 and len(normalized.encode()) <= 254 + 3 * 254
    local, domain = normalized.rsplit("@", 1)
    assert local and domain and len(local.encode()) <= 64
    assert not set(normalized) & set(' <>(),;:\\"[]')
    assert normalize_address(normalized, allow_test_domains=True) == normalized


@FAST
@given(
    subject=tricky_text,
    from_name=tricky_text,
    header_value=tricky_text,
    to=st.lists(addresses, min_size=1, max_size=3),
)
def test_what_validation_accepts_builds_a_message_with_exactly_its_headers(
    subject: str, from_name: str, header_value: str, to: list[str]
) -> None:
    request = _record(
        subject=subject,
        from_name=from_name,
        headers={"X-Tag": header_value},
        to=[Recipient(a, "Name") for a in to],
    )
    verdict = validate(request, TENANT, encoded_size=100, max_bytes=10_000)
    if verdict.rejected_reason is not None or not verdict.recipients:
        return
    raw = build_mime(
        request,
        subject=subject,
        text="body",
        html=None,
        accepted_at=0,
        recipients=verdict.recipients,
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    assert sorted(names) == sorted(
        [b"from", b"to", b"subject", b"date", b"message-id", b"x-tag", b"mime-version",
         b"content-type", b"content-transfer-encoding"]
    )  # fmt: skip
    # SMTPUTF8 messages carry raw UTF-8 headers, which message_from_bytes leaves as surrogates.
    message = (
        message_from_bytes(raw, policy=default)
        if raw.isascii()
        else message_from_string(raw.decode("utf-8"), policy=default)
    )
    shown = {a.addr_spec for a in message["To"].addresses}
    assert shown <= set(verdict.recipients)
    for value in (str(message["Subject"]), str(message["From"]), str(message["X-Tag"])):
        assert not UNSAFE & set(value)


@FAST
@given(st.text(alphabet="%({:})0123456789.*-#+ sdx", max_size=2000))
def test_format_spec_widths_are_counted_in_one_pass(fmt: str) -> None:
    assert _spec_width(fmt) >= 0
