"""The kinds of value each EmailRequested field is fuzzed with: {kind: (weight, strategy)}.

Most weight is on valid kinds, so that much of the mail gets through ingest to the router, the
sender and the SMTP server. Addresses an injection tries to add start with evil or smuggled
(the wire check's markers) and only ever follow a line break or another separator: no valid
field names one.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

from hypothesis import strategies as st

Kinds = dict[str, tuple[int, Any]]

# Test domains whose MX is the recording SMTP server (deploy/local/dnsmasq.conf), and domains
# that bounce at once (a null MX, NXDOMAIN, an IDN under .test): none defers for long.
DELIVERING = (
    *["inbox.mailstream.test"] * 6,
    "INBOX.Mailstream.TEST",
    "implicit.mailstream.test",
    "fallback.mailstream.test",
    "tls-required.mailstream.test",
)
BOUNCING = ("nullmx.mailstream.test", "nx.mailstream.test", "münchen.mailstream.test")
SUPPRESSED = "fz-suppressed@inbox.mailstream.test"  # on acme's list before the run
TEMPLATES = ("fuzz-otp", "fuzz-list", "fuzz-html")  # fuzz-otp has versions 1 and 2 for acme
UNSUBSCRIBE = "<https://acme.mailstream.test/unsubscribe/fz>"

LETTERS = string.ascii_lowercase + string.digits
word = st.text(LETTERS, min_size=1, max_size=10)
words = st.lists(word, min_size=1, max_size=6).map(" ".join)
# Printable text of any script: no controls, surrogates, line or paragraph separators.
printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30
)
SEPARATORS = ("\r\n", "\r", "\n", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028")
EVIL = "evil@inbox.mailstream.test"
SMUGGLED = "smuggled@inbox.mailstream.test"
INJECTIONS = (
    f"\r\nBcc: {EVIL}",
    f"\nX-Injected: {EVIL}",
    f"\rBcc: {EVIL}",
    f"\x00Bcc: {EVIL}",
    f"\u2028Bcc: {EVIL}",
    f"\x85Bcc: {EVIL}",
    f"\r\n\r\n.\r\nMAIL FROM:<{SMUGGLED}>\r\nRCPT TO:<{SMUGGLED}>\r\nDATA\r\n",
    f"=?utf-8?q?x=0D=0ABcc:_{EVIL}?=",
    "=?utf-8?b?" + base64.b64encode(f"x\r\nBcc: {EVIL}".encode()).decode() + "?=",
)
# Text with a line break, NUL, another separator or a whole injection in it.
broken = st.tuples(
    st.one_of(word, printable),
    st.sampled_from(SEPARATORS + INJECTIONS),
    st.one_of(st.just(""), word),
).map("".join)


def huge(unit: st.SearchStrategy[str], low: int, high: int) -> st.SearchStrategy[str]:
    """low..high characters repeating a small drawn unit: a few draws for any size."""
    return st.tuples(unit, st.integers(low, high)).map(
        lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]]
    )


def rel(low: int, high: int) -> st.SearchStrategy[tuple[str, int]]:
    return st.integers(low, high).map(lambda ms: ("rel", ms))


def absolute(*values: int) -> st.SearchStrategy[tuple[str, int]]:
    return st.sampled_from([("abs", v) for v in values])


SECOND, DAY = 1000, 86_400_000
OVERFLOW = (2**62, -(2**62), 2**63 - 1)  # valid Avro longs, beyond any datetime
YEAR_1, YEAR_9999 = -62135596800000, 253402300799999

# fmt: off
MESSAGE_ID: Kinds = {
    "valid": (78, word), "symbols": (5, st.text(string.punctuation, min_size=1, max_size=20)),
    "max-length": (3, st.just("")), "too-long": (3, st.integers(129, 200).map(lambda n: "x" * n)),
    "broken": (3, broken), "unicode": (3, printable), "space": (2, word), "empty": (3, st.just("")),
}
TENANT: Kinds = {
    "acme": (68, st.just("acme")), "other": (20, st.just("other")),
    "unknown": (3, st.sampled_from(["nobody", "routed-not", "acme2"])), "empty": (2, st.just("")),
    "case": (2, st.just("ACME")), "long": (2, huge(word, 257, 70_000)),
    "unicode": (2, st.just("acmé")), "broken": (1, st.just("acme\r\n")),
}
SENDER_LOCALS = ("hello", "noreply", "Support.Team+fz", "o'brien", "a.b-c_d")


# {local}, {domain} (the tenant's sender domain) and {elsewhere} (the other tenant's) are filled
# in after the draw: tables are built once, strategies are costly to build per request.
SENDER: Kinds = {
    "valid": (78, st.just("{local}@{domain}")),
    "upper-domain": (4, st.just("{local}@{DOMAIN}")),
    "unicode-local": (3, st.sampled_from(["jösé@{domain}", "用户@{domain}"])),
    "wrong-domain": (5, st.sampled_from([
        "{local}@{elsewhere}", "{local}@attacker.example", "{local}@{domain}.example",
        "{local}@sub.{domain}",
    ])),
    "garbage": (6, st.sampled_from([
        "", "hello", "hello@", "@{domain}", "Hello <hello@{domain}>", "hello@[127.0.0.1]",
        "h" * 65 + "@{domain}", "h" * 300 + "@{domain}", "hello\x00@{domain}", "h @{domain}",
    ])),
    "injection": (4, st.sampled_from(INJECTIONS).map(lambda s: "hello@{domain}" + s)),
}


REPLY_TO: Kinds = {
    "none": (75, st.none()),
    "valid": (15, st.sampled_from(["support@acme.mailstream.test", "r@inbox.mailstream.test"])),
    "garbage": (5, st.sampled_from(["", "nope", "a@@b", "Support <s@acme.mailstream.test>"])),
    "injection": (5, st.sampled_from(INJECTIONS).map(lambda s: f"r@inbox.mailstream.test{s}")),
}
NAME: Kinds = {
    "none": (60, st.none()), "words": (20, words), "unicode": (6, printable),
    "specials": (5, st.sampled_from(['"Doe, John"', "A <b@inbox.mailstream.test>", 'x"y', "a\\b",
                                     "=?utf-8?q?hi?=", "(comment)", "; : , @"])),
    "broken": (4, broken), "long": (3, huge(st.one_of(words, printable), 300, 3000)),
}


ADDRESS: Kinds = {  # {local} is filled in after the draw
    "deliver": (70, st.sampled_from(DELIVERING).map(lambda d: "{local}@" + d)),
    "bounce": (10, st.sampled_from(BOUNCING).map(lambda d: "{local}@" + d)),
    "unicode": (4, word.map(lambda w: f"{w}é@inbox.mailstream.test")),
    "suppressed": (2, st.just(SUPPRESSED)),
    "invalid": (8, st.sampled_from([
        "", " ", "plainaddress", "@inbox.mailstream.test", "r@", "r@@inbox.mailstream.test",
        "r b@inbox.mailstream.test", '"r b"@inbox.mailstream.test', "r@[127.0.0.1]",
        "r\u202e@inbox.mailstream.test", "r\u200b@inbox.mailstream.test", "r@-x.test",
        "<r@inbox.mailstream.test>", "R <r@inbox.mailstream.test>", "r..s@inbox.x.test",
        f"r@inbox.mailstream.test,{SMUGGLED}",
    ])),
    "long": (3, huge(word, 65, 70_000).map(lambda s: f"{s}@inbox.mailstream.test")),
    "injection": (3, st.sampled_from(INJECTIONS).map(lambda s: f"r@inbox.mailstream.test{s}")),
}


TO_COUNT: Kinds = {
    "one": (75, st.just(1)), "few": (14, st.integers(2, 3)), "none": (4, st.just(0)),
    "several": (4, st.integers(4, 10)), "many": (2, st.integers(11, 50)),
    "too-many": (1, st.integers(51, 60)),
}
COPY_COUNT: Kinds = {  # up to 120 recipients in all
    "none": (86, st.just(0)), "few": (13, st.integers(1, 3)), "many": (1, st.integers(4, 60)),
}
SUBJECT: Kinds = {
    "words": (40, words), "none": (10, st.none()), "empty": (5, st.just("")),
    "unicode": (15, printable), "huge": (3, huge(st.one_of(words, printable), 1000, 20_000)),
    "broken": (12, broken),
    "encoded-word": (5, st.sampled_from(["=?utf-8?q?hi?=", "a =?utf-8?b?aGk=?= b"])),
    "spacing": (10, words.map(lambda w: f"  {w}\t  x ")),
}


def body(none_weight: int) -> Kinds:
    return {
        "none": (none_weight, st.none()), "words": (40, words), "empty": (5, st.just("")),
        "unicode": (10, st.lists(printable, min_size=1, max_size=5).map("\n".join)),
        "smuggling": (5, st.sampled_from([
            f"hi\r\n.\r\nMAIL FROM:<{SMUGGLED}>\r\nRCPT TO:<{SMUGGLED}>\r\nDATA\r\n"
            "Subject: smuggled\r\n\r\nx\r\n.\r\nQUIT\r\n",
            "a\n.\nRSET\n", "a\r.\rQUIT\r", ".", "..\r\n.\r\n", "\r\n.\r\n",
        ])),
        "controls": (5, st.lists(st.one_of(word, st.sampled_from((*SEPARATORS, "\t", "\u2029"))),
                                 min_size=1, max_size=12).map("".join)),
        "dots": (5, st.lists(st.sampled_from([".", "..", "From x", "=", "=2E", " ", "-- "]),
                             min_size=1, max_size=8).map("\n".join)),
        "long-line": (3, huge(word, 998, 5000)),
        "huge": (1, huge(st.one_of(words, printable), 100_000, 950_000)),
    }


TEMPLATE: Kinds = {"none": (70, st.just(False)), "ref": (30, st.just(True))}
TEMPLATE_NAME: Kinds = {
    "stored": (70, st.sampled_from(TEMPLATES)), "missing": (10, st.just("fuzz-missing")),
    "odd": (20, st.sampled_from(["", "FUZZ-OTP", "fuzz-otp\r\n", "x" * 300, "fuzz-ötp",
                                 "fuzz-otp ", "../fuzz-otp", "y" * 70_000])),
}
TEMPLATE_VERSION: Kinds = {
    "latest": (70, st.none()), "pinned": (20, st.sampled_from([1, 2])),
    "odd": (10, st.sampled_from([0, -1, 3, 2**31 - 1, -(2**31)])),
}
TEMPLATE_LOCALE: Kinds = {
    "default": (60, st.none()),
    "known": (20, st.sampled_from(["en", "pt", "pt-BR", "PT_br", "en-US"])),
    "odd": (20, st.sampled_from(["xx", "", "en\r\n", "e" * 300, "zh-Hant-TW", "../en", "é"])),
}
# fmt: on


def _json_value() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        broken,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


json_value = _json_value()
# fmt: off
VARIABLE: Kinds = {  # one template variable's value
    "word": (40, word), "int": (10, st.integers(-(10**6), 10**6)), "big-int": (3, st.just(10**40)),
    "float": (3, st.floats(allow_nan=False, allow_infinity=False)), "empty": (5, st.just("")),
    "unicode": (10, printable), "broken": (10, broken), "nested": (7, json_value),
    "null": (5, st.none()), "huge": (2, huge(word, 100_000, 600_000)),
    "smuggling": (5, st.just(f"x\r\n.\r\nMAIL FROM:<{SMUGGLED}>\r\n")),
}
ODD_JSON = st.one_of(
    st.sampled_from([
        "", "{", "not json", "[]", "[1, 2, 3]", '"a string"', "null", "true", "1e400", "NaN",
        "-Infinity", '{"code": 1e999}', '{"code": "\\u0000"}', '{"code": "a", "code": "b"}',
        '\ufeff{"code": "bom"}', '{"code": "\\ud800"}', '{"code": "\\r\\nBcc: ' + EVIL + '"}',
        "9" * 5000, json.dumps({f"k{i}": i for i in range(5000)}),
    ]),
    st.integers(1, 100_000).map(lambda d: '{"code": ' + "[" * d + "]" * d + "}"),
    json_value.map(json.dumps),
)
HEADERS_COUNT: Kinds = {
    "none": (60, st.just(0)), "few": (25, st.integers(1, 2)),
    "several": (10, st.integers(3, 10)), "many": (5, st.integers(11, 60)),
}
HEADER_NAME: Kinds = {
    "x": (62, word.map(lambda w: f"X-{w}")), "x-lower": (5, word.map(lambda w: f"x-{w}")),
    "structural": (10, st.sampled_from([
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "DKIM-Signature", "Received",
        "Return-Path", "MIME-Version", "Content-Type", "content-transfer-encoding", "Sender",
        "Reply-To", "List-Id",
    ])),
    "bad-name": (10, st.sampled_from([
        "X-Bad Name", "X-Colon:x", "X-\r\nBcc", "", "X-" + "a" * 200, "X-Ünï", "X-Tab\t", ":",
        "X-Null\x00", "X-Semi;colon", " X-Lead",
    ])),
    "unsubscribe": (5, st.sampled_from(["List-Unsubscribe", "list-unsubscribe-post"])),
}
HEADER_VALUE: Kinds = {
    "words": (50, words), "unicode": (10, printable), "empty": (5, st.just("")),
    "long": (5, huge(st.one_of(word, words), 1000, 5000)), "broken": (15, broken),
    "encoded-word": (5, st.sampled_from(["=?utf-8?q?hello?=", "=?iso-8859-1?b?6Q==?="])),
    "padded": (5, words.map(lambda w: f"  {w}\t ")),
}
UNSUBSCRIBE_VALUES = (
    UNSUBSCRIBE, "<mailto:unsubscribe@acme.mailstream.test>", f"{UNSUBSCRIBE}, <mailto:u@x.test>",
)
ATTACHMENTS_COUNT: Kinds = {
    "none": (80, st.just(0)), "one": (12, st.just(1)),
    "few": (5, st.integers(2, 5)), "many": (3, st.integers(6, 30)),
}
FILENAME: Kinds = {
    "plain": (50, st.tuples(word, st.sampled_from([".pdf", ".txt", ".png", ""])).map("".join)),
    "unicode": (10, printable), "empty": (5, st.just("")),
    "long": (5, huge(st.one_of(word, printable), 300, 2000)), "broken": (15, broken),
    "quoting": (10, st.sampled_from([
        "../../etc/passwd", 'a"; name="evil.exe', "a;b=c", "a\\b", "=?utf-8?q?a?=", "a'b'c", "*",
        "a b  c", "%0D%0A",
    ])),
}
CONTENT_TYPE: Kinds = {
    "valid": (50, st.sampled_from([
        "application/pdf", "text/plain", "image/png", "application/octet-stream", "text/csv",
        "text/html",
    ])),
    "garbage": (10, word), "empty": (5, st.just("")),
    "params": (5, st.just("text/plain; charset=utf-8")),
    "structural": (10, st.sampled_from(["multipart/mixed", "message/rfc822", "message/partial"])),
    "broken": (10, broken.map(lambda s: f"text/plain{s}")),
    "odd": (10, st.sampled_from(["/", "a/", "/b", "a/b/c", "ïmage/png", "text/", "TEXT/PLAIN"])),
}
CONTENT_SIZE: Kinds = {  # -1: a few bytes that try to end DATA
    "tiny": (40, st.integers(1, 2000)), "empty": (20, st.just(0)), "smuggling": (10, st.just(-1)),
    "medium": (15, st.integers(2001, 60_000)), "large": (2, st.integers(60_001, 400_000)),
    "near-limit": (1, st.integers(850_000, 950_000)),
}
TAGS_COUNT: Kinds = {
    "none": (60, st.just(0)), "few": (30, st.integers(1, 3)),
    "several": (7, st.integers(4, 20)), "many": (3, st.integers(100, 300)),
}
TAG_TEXT: Kinds = {
    "word": (65, word), "empty": (8, st.just("")), "unicode": (12, printable),
    "broken": (10, broken), "long": (5, huge(word, 1000, 5000)),
}
HUGE_TAG = huge(word, 60_000, 70_000)  # once in a while, one tag this big
EXPIRES_AT: Kinds = {
    "none": (70, st.none()), "past": (8, rel(-DAY, -SECOND)), "soon": (8, rel(SECOND, 15 * SECOND)),
    "later": (8, rel(60 * SECOND, 3650 * DAY)), "epoch": (2, absolute(0, -1)),
    "extreme": (2, absolute(YEAR_1, YEAR_9999)), "overflow": (2, absolute(*OVERFLOW)),
}
SEND_AT: Kinds = {  # never more than seconds ahead: the run must end
    "none": (80, st.none()), "past": (8, rel(-DAY, 0)), "soon": (10, rel(0, 8 * SECOND)),
    "overflow": (2, absolute(*OVERFLOW)),
}
REQUESTED_AT: Kinds = {
    "now": (90, st.just(("rel", 0))), "epoch": (4, absolute(0)),
    "future": (3, st.just(("rel", 365 * DAY))), "overflow": (3, absolute(*OVERFLOW)),
}
# fmt: on
