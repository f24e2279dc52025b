import pytest

from services.common.addresses import normalize_address
from services.common.avro.records import EmailRequested, Recipient
from services.common.header_text import unsafe_text
from services.common.tenants import Tenant
from services.ingest import reasons
from services.ingest.headers_policy import header_allowed
from services.ingest.validation import validate

TENANT = Tenant("acme", frozenset({"acme.example"}))


def request(**overrides: object) -> EmailRequested:
    fields: dict[str, object] = {
        "message_id": "m-1",
        "tenant_id": "acme",
        "from_address": "hello@acme.example",
        "to": [Recipient("bob@example.org")],
        "requested_at": 0,
        "text_body": "hi",
    }
    fields.update(overrides)
    return EmailRequested(**fields)  # type: ignore[arg-type]


def verdict(req: EmailRequested, tenant: Tenant | None = TENANT, size: int = 100) -> str | None:
    return validate(req, tenant, encoded_size=size, max_bytes=1000).rejected_reason


def test_a_good_request_passes_with_normalized_recipients() -> None:
    result = validate(
        request(cc=[Recipient("Carol@Example.org")]), TENANT, encoded_size=10, max_bytes=1000
    )
    assert result.rejected_reason is None
    assert result.recipients == ["bob@example.org", "Carol@example.org"]


@pytest.mark.parametrize(
    ("req", "tenant", "size", "reason"),
    [
        (request(message_id=""), TENANT, 10, reasons.MESSAGE_ID_INVALID),
        (request(message_id="x" * 129), TENANT, 10, reasons.MESSAGE_ID_INVALID),
        (request(message_id="a\nb"), TENANT, 10, reasons.MESSAGE_ID_INVALID),
        (request(), None, 10, reasons.TENANT_UNKNOWN),
        (request(), TENANT, 5000, reasons.REQUEST_TOO_LARGE),
        (request(from_address="hello@other.example"), TENANT, 10, reasons.SENDER_NOT_PERMITTED),
        (request(from_address="not an address"), TENANT, 10, reasons.SENDER_INVALID),
        (request(to=[]), TENANT, 10, reasons.RECIPIENTS_MISSING),
        (
            request(to=[Recipient(f"u{i}@example.org") for i in range(51)]),
            TENANT,
            10,
            reasons.RECIPIENTS_TOO_MANY,
        ),
        (request(text_body=None), TENANT, 10, reasons.CONTENT_MISSING),
        (request(headers={"Bcc": "x@y.z"}), TENANT, 10, reasons.HEADER_NOT_ALLOWED),
        (request(headers={"X-Ok": "a\r\nBcc: x@y.z"}), TENANT, 10, reasons.HEADER_VALUE_INVALID),
        (
            request(subject="=?UTF-8?Q?hi=0ABcc:_evil@x.org?="),
            TENANT,
            10,
            reasons.HEADER_VALUE_INVALID,
        ),
        (request(from_name="Eve\u2028Bcc: x@y.z"), TENANT, 10, reasons.HEADER_VALUE_INVALID),
    ],
)
def test_rejections_carry_a_stable_reason(
    req: EmailRequested, tenant: Tenant | None, size: int, reason: str
) -> None:
    assert verdict(req, tenant, size) == reason


def test_invalid_recipients_are_listed_and_the_rest_kept() -> None:
    result = validate(
        request(to=[Recipient("bob@example.org"), Recipient("a@b@c")]),
        TENANT,
        encoded_size=10,
        max_bytes=1000,
    )
    assert result.rejected_reason is None
    assert result.recipients == ["bob@example.org"]
    assert result.invalid_recipients == [("a@b@c", reasons.RECIPIENT_INVALID)]


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.org)<bob@example.org>",
        "a@b@c",
        "bob\u200b@example.org",
        "bob@exam\u202eple.org",
        "bob@example.org\r\nRCPT TO:<x@y.z>",
        '"quoted"@example.org',
        "bob@[127.0.0.1]",
        "",
    ],
)
def test_addresses_that_confuse_parsers_are_refused(address: str) -> None:
    assert normalize_address(address) is None


def test_idn_and_utf8_addresses_are_normalized() -> None:
    assert normalize_address("user@bücher.example") == "user@bücher.example"


def test_header_policy() -> None:
    assert header_allowed("X-Campaign")
    assert header_allowed("List-Unsubscribe")
    assert not header_allowed("From")
    assert not header_allowed("X-Bad Name")
    assert unsafe_text("=?utf-8?b?aGkKQmNjOiB4QHkueg==?=")  # base64 of "hi\nBcc: x@y.z"
    assert not unsafe_text("=?utf-8?q?caf=C3=A9?=")


def test_special_use_test_domains_only_when_allowed() -> None:
    assert normalize_address("bob@inbox.mailstream.test") is None
    assert normalize_address("bob@inbox.mailstream.test", allow_test_domains=True) == (
        "bob@inbox.mailstream.test"
    )


def test_bulk_mail_must_offer_unsubscribe() -> None:
    bulk = request()
    assert validate(bulk, TENANT, encoded_size=10, max_bytes=1000, bulk=True).rejected_reason == (
        reasons.LIST_UNSUBSCRIBE_MISSING
    )
    with_header = request(headers={"List-Unsubscribe": "<https://acme.example/u/1>"})
    assert (
        validate(with_header, TENANT, encoded_size=10, max_bytes=1000, bulk=True).rejected_reason
        is None
    )
    assert validate(bulk, TENANT, encoded_size=10, max_bytes=1000).rejected_reason is None


@pytest.mark.parametrize(
    "value",
    [
        "=?x-unknown?q?hi?=",  # a charset no codec knows
        "=?rot13?q?hi?=",  # a codec that is no text encoding
        "=?idna?q?good?=",  # a codec that raises UnicodeError on any bad input
        "=?utf-8*en?q?hi=0Athere?=",  # an RFC 2231 language suffix does not hide the LF
        "=?utf-16be?b?AGgAaQAKAEI=?=",  # UTF-16 "hi\nB"
        "=?utf-8?q?a=0D?=",
        "=?utf-8?q?a=zz?=",  # not hex
        "=?utf-8?q?=E2=80=A8?=",  # U+2028 in UTF-8
    ],
)
def test_encoded_words_that_cannot_be_decoded_or_hide_a_break_are_unsafe(value: str) -> None:
    assert unsafe_text(value)


@pytest.mark.parametrize(
    "value", ["=?utf-8*en?q?caf=C3=A9?=", "=?iso-8859-1?q?caf=E9?=", "plain text", "a =? b ?= c"]
)
def test_ordinary_encoded_words_are_safe(value: str) -> None:
    assert not unsafe_text(value)


def test_local_parts_over_64_octets_are_refused() -> None:
    assert normalize_address("a" * 64 + "@example.org") == "a" * 64 + "@example.org"
    assert normalize_address("a" * 65 + "@example.org") is None
    assert normalize_address("é" * 33 + "@example.org") is None  # 66 octets in UTF-8


def test_cc_and_bcc_count_towards_a_cap_of_100_recipients() -> None:
    many = [Recipient(f"r{i}@example.org") for i in range(50)]
    at_cap = request(to=many, cc=many[:25], bcc=many[25:])
    assert validate(at_cap, TENANT, encoded_size=10, max_bytes=10**6).rejected_reason is None
    over = request(to=many, cc=many, bcc=[Recipient("one@example.org")])
    verdict = validate(over, TENANT, encoded_size=10, max_bytes=10**6)
    assert verdict.rejected_reason == reasons.RECIPIENTS_TOO_MANY
