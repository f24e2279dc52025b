import pytest

from services.common.addresses import _normalized, normalize_address
from services.common.avro.records import Attachment, EmailRequested, Recipient
from services.common.header_text import unsafe_text
from services.common.reasons import Reason
from services.common.tenants import Tenant
from services.ingest.headers_policy import header_allowed
from services.ingest.validation import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_TAGS, validate

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
        (request(message_id=""), TENANT, 10, Reason.MESSAGE_ID_INVALID),
        (request(message_id="x" * 129), TENANT, 10, Reason.MESSAGE_ID_INVALID),
        (request(message_id="a\nb"), TENANT, 10, Reason.MESSAGE_ID_INVALID),
        (request(), None, 10, Reason.TENANT_UNKNOWN),
        (request(requested_at=2**62), TENANT, 10, Reason.TIMESTAMP_INVALID),
        (request(send_at=-1), TENANT, 10, Reason.TIMESTAMP_INVALID),
        (request(expires_at=2**63 - 1), TENANT, 10, Reason.TIMESTAMP_INVALID),
        (request(), TENANT, 5000, Reason.REQUEST_TOO_LARGE),
        (request(from_address="hello@other.example"), TENANT, 10, Reason.SENDER_NOT_PERMITTED),
        (request(from_address="not an address"), TENANT, 10, Reason.SENDER_INVALID),
        (request(to=[]), TENANT, 10, Reason.RECIPIENTS_MISSING),
        (
            request(to=[Recipient(f"u{i}@example.org") for i in range(51)]),
            TENANT,
            10,
            Reason.RECIPIENTS_TOO_MANY,
        ),
        (request(text_body=None), TENANT, 10, Reason.CONTENT_MISSING),
        (request(headers={"Bcc": "x@y.z"}), TENANT, 10, Reason.HEADER_NOT_ALLOWED),
        (request(headers={"X-Ok": "a\r\nBcc: x@y.z"}), TENANT, 10, Reason.HEADER_VALUE_INVALID),
        (
            request(subject="=?UTF-8?Q?hi=0ABcc:_evil@x.org?="),
            TENANT,
            10,
            Reason.HEADER_VALUE_INVALID,
        ),
        (request(from_name="Eve\u2028Bcc: x@y.z"), TENANT, 10, Reason.HEADER_VALUE_INVALID),
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
    assert result.invalid_recipients == [("a@b@c", Reason.RECIPIENT_INVALID)]


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
        Reason.LIST_UNSUBSCRIBE_MISSING
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
    assert verdict.rejected_reason == Reason.RECIPIENTS_TOO_MANY


def attachment(filename: str = "report.pdf", content_type: str = "application/pdf") -> Attachment:
    return Attachment(filename=filename, content_type=content_type, content=b"%PDF")


def rejection(req: EmailRequested, max_bytes: int = 10**7) -> tuple[str | None, str]:
    result = validate(req, TENANT, encoded_size=10, max_bytes=max_bytes)
    return result.rejected_reason, result.detail


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("a\r\nContent-Type: text/html.pdf", "control"),
        ("report\n.pdf", "control"),
        ("report\r.pdf", "control"),
        ("report\x00.pdf", "U+0000, a control"),
        ("report\t.pdf", "control"),
        ("report\x1b[31m.pdf", "control"),
        ("report\x7f.pdf", "control"),
        ("report\x85.pdf", "control"),
        ("report\u2028.pdf", "control"),
        ("invoice\u202efdp.exe", "U+202E"),  # shown right to left: "invoiceexe.pdf"
        ("report\u200b.pdf", "format"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 256, "256 > 255"),
        ("../../etc/passwd", "path"),
        ("dir/report.pdf", "path"),
        ("C:\\Users\\report.pdf", "path"),
        ("..", "path"),
        ("=?utf-8?q?a=0D=0ABcc:_evil@example.org?=", "encoded word"),
        ("=?utf-8?q?caf=C3=A9?=.pdf", "encoded word"),
    ],
)
def test_attachment_filenames_are_refused(filename: str, problem: str) -> None:
    reason, detail = rejection(request(attachments=[attachment(), attachment(filename=filename)]))
    assert reason == Reason.ATTACHMENT_INVALID
    assert detail.startswith("attachments[1].filename: ") and problem in detail


@pytest.mark.parametrize(
    "filename",
    [
        "résumé.pdf",  # written as RFC 2231 filename*=utf-8''r%C3%A9sum%C3%A9.pdf
        "отчёт 2026.xlsx",
        "日本語のファイル名.txt",
        "👍.png",
        "x" * 255,
        "a b  c.txt",
        'quote"d.txt',
        "semi;colon=equals.txt",
        ".profile",
        "100%.txt",
    ],
)
def test_attachment_filenames_are_accepted(filename: str) -> None:
    assert rejection(request(attachments=[attachment(filename=filename)])) == (None, "")


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [
        ("text/plain\r\nBcc: evil@example.org", "media type"),
        ("text/plain\nX: y", "media type"),
        ("text/plain\x00", "media type"),
        ("text/plain\n", "media type"),  # re.match with "$" would have let this in
        ("", "media type"),
        ("pdf", "media type"),
        ("text/", "media type"),
        ("/plain", "media type"),
        ("text/plain/html", "media type"),
        ("text /plain", "media type"),
        ("té/plain", "media type"),
        (".hidden/type", "media type"),
        ("text/plain;", "media type"),
        ("text/plain; charset", "media type"),
        ('text/plain; charset="utf-8"', "media type"),  # no quoted strings: no escapes, no =?
        ("text/plain; charset==?utf-8?q?=0D=0A?=", "media type"),
        ("text/plain; name*=utf-8''evil.exe", "media type"),  # RFC 2231: not decoded here
        ("text/plain; charset=utf-8\r\nX: y", "media type"),
        ("a" * 127 + "/" + "b" * 127 + ";c=d", "259 > 255"),
        ("a/" + "b" * 128, "media type"),  # RFC 6838: at most 127 characters
        ("multipart/mixed", "multipart/*"),
        ("Multipart/Alternative", "multipart/*"),
        ("message/rfc822", "message/*"),
        ("text/plain; charset=utf-8; charset=latin1", "twice"),
        ("text/plain; Charset=utf-8; charset=latin1", "twice"),
        ("text/plain; name=evil.exe", "name parameter"),
        ("text/plain; a=1; b=2; c=3; d=4; e=5", "5 > 4"),
        ("text/plain; x=a*b", "media type"),  # the email package would drop these three
        ("text/plain; x=it's", "media type"),
        ("text/plain; x=%41", "media type"),
    ],
)
def test_attachment_content_types_are_refused(content_type: str, problem: str) -> None:
    reason, detail = rejection(request(attachments=[attachment(content_type=content_type)]))
    assert reason == Reason.ATTACHMENT_INVALID
    assert detail.startswith("attachments[0].content_type: ") and problem in detail


@pytest.mark.parametrize(
    "content_type",
    [
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "image/svg+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.12",
        "Text/CSV",
        "text/plain; charset=utf-8",  # RFC 2045 parameters, token values only
        "text/plain;charset=UTF-8",
        "text/csv; charset=utf-8; header=present",
        "application/x-pkcs7-signature",
        "a" * 127 + "/" + "b" * 127,
    ],
)
def test_attachment_content_types_are_accepted(content_type: str) -> None:
    assert rejection(request(attachments=[attachment(content_type=content_type)])) == (None, "")


def test_attachment_count_and_total_size_are_bounded() -> None:
    at_cap = request(attachments=[attachment()] * MAX_ATTACHMENTS)
    assert rejection(at_cap) == (None, "")
    over = request(attachments=[attachment()] * (MAX_ATTACHMENTS + 1))
    assert rejection(over) == (Reason.ATTACHMENTS_TOO_MANY, "21 > 20")
    half = MAX_ATTACHMENT_BYTES // 2
    big = [Attachment("a.bin", "application/octet-stream", b"\0" * half)] * 2
    assert rejection(request(attachments=big)) == (None, "")
    bigger = [*big, Attachment("b.bin", "application/octet-stream", b"\0")]
    reason, detail = rejection(request(attachments=bigger))
    assert reason == Reason.ATTACHMENTS_TOO_LARGE and detail.endswith("> 4194304 bytes")


def test_the_request_size_limit_still_comes_first() -> None:
    """At the default 900 KiB limit an oversized attachment is request_too_large."""
    req = request(attachments=[attachment()] * (MAX_ATTACHMENTS + 1))
    assert validate(req, TENANT, encoded_size=921_601, max_bytes=921_600).rejected_reason == (
        Reason.REQUEST_TOO_LARGE
    )


@pytest.mark.parametrize(
    ("tags", "reason", "problem"),
    [
        ({"": "v"}, Reason.TAG_INVALID, "key ''"),
        ({"k" * 65: "v"}, Reason.TAG_INVALID, "key"),
        ({"campaign\r\nBcc": "v"}, Reason.TAG_INVALID, "key 'campaign\\r\\nBcc'"),
        ({"with space": "v"}, Reason.TAG_INVALID, "key"),
        ({"ключ": "v"}, Reason.TAG_INVALID, "key '\\u043a"),
        ({"k=v": "v"}, Reason.TAG_INVALID, "key"),
        ({"k": "v" * 257}, Reason.TAG_INVALID, "k: 257 > 256"),
        ({"k": "a\r\nb"}, Reason.TAG_INVALID, "k: U+000D, a control"),
        ({"k": "a\x00b"}, Reason.TAG_INVALID, "k: U+0000, a control"),
        ({"k": "a\tb"}, Reason.TAG_INVALID, "k: U+0009, a control"),
        ({"k": "a\u2029b"}, Reason.TAG_INVALID, "k: U+2029, a control"),
        ({f"t{i}": "v" for i in range(33)}, Reason.TAGS_TOO_MANY, "33 > 32"),
    ],
)
def test_tags_are_refused(tags: dict[str, str], reason: str, problem: str) -> None:
    got, detail = rejection(request(tags=tags))
    assert got == reason and detail.startswith(problem)


def test_tags_at_their_limits_are_accepted() -> None:
    tags = {f"t{i}": "v" for i in range(MAX_TAGS - 2)}
    tags |= {"A-Za-z0-9_.:-" + "k" * 51: "é" * 256, "empty": ""}
    assert len(tags) == MAX_TAGS
    assert rejection(request(tags=tags)) == (None, "")


@pytest.mark.parametrize("name", ["X-Tag\n", "X-Tag\r\n", "List-Unsubscribe\n"])
def test_header_names_ending_in_a_line_feed_are_refused(name: str) -> None:
    assert not header_allowed(name)
    assert rejection(request(headers={name: "v"}))[0] == Reason.HEADER_NOT_ALLOWED


def test_message_ids_ending_in_a_line_feed_are_refused() -> None:
    assert rejection(request(message_id="m-1\n"))[0] == Reason.MESSAGE_ID_INVALID


def test_a_detail_never_carries_a_raw_control_character_and_is_cut() -> None:
    _, detail = rejection(request(headers={"X-" + "\r\n" * 100: "v"}))
    assert detail.isprintable() and len(detail) <= 80


def test_an_address_too_long_to_be_valid_is_refused_before_the_cache_keeps_it() -> None:
    # The cache of validated addresses holds 4,096 keys: hostile requests with recipients
    # of a megabyte each must not be able to pin gigabytes in it.
    _normalized.cache_clear()
    assert normalize_address("a" * 1_000_000 + "@example.org") is None
    assert _normalized.cache_info().currsize == 0
    assert normalize_address("bob@example.org") == "bob@example.org"
    assert _normalized.cache_info().currsize == 1
