"""DKIM signing checked by dkimpy's verifier, with DNS answered from a dict (no sockets)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import dkim
import nacl.encoding
import nacl.signing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mail.dkim import (
    DkimKey,
    DkimSigner,
    load_key,
    parse_key,
    parse_message,
    relaxed_body,
    relaxed_headers,
)

DOMAIN = "mailstream.test"
MESSAGE = (
    b"From: Acme <noreply@mailstream.test>\r\n"
    b"To: Someone <someone@example.org>\r\n"
    b"Subject: Your  receipt\r\n"
    b" for order 42\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <42@mailstream.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"List-Unsubscribe: <https://mailstream.test/u/42>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Mailer: mailstream\r\n"
    b"\r\n"
    b"Thank you for your order.  \r\n" + b"Line of body text.\r\n" * 200 + b"\r\n\r\n"
)


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return DkimKey(selector="rsa2026", algorithm="rsa-sha256", private_key=private)


@pytest.fixture(scope="module")
def ed_key() -> DkimKey:
    private = ed25519.Ed25519PrivateKey.generate()
    return DkimKey(selector="ed2026", algorithm="ed25519-sha256", private_key=private)


def dns_for(*keys: DkimKey) -> Callable[..., bytes | None]:
    records = {
        f"{k.selector}._domainkey.{DOMAIN}.".encode(): k.dns_txt_record().encode() for k in keys
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return dnsfunc


def verify_each(message: bytes, dnsfunc: Callable[..., bytes | None]) -> list[bool]:
    """dkimpy's result per signature; like `dkim.verify`, a DKIMException counts as a failure."""
    count = sum(1 for line in message.split(b"\r\n") if line.startswith(b"DKIM-Signature:"))
    results = []
    for idx in range(count):
        try:
            results.append(bool(dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            results.append(False)
    return results


def signature_headers(message: bytes) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    return re.findall(r"^DKIM-Signature:.*?(?=^\S)", head + "\r\nEnd:", re.M | re.S)


def tags(header: str) -> dict[str, str]:
    value = re.sub(r"\s+", "", header.split(":", 1)[1])
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def test_rsa_signature_verifies(rsa_key: DkimKey) -> None:
    signed = DkimSigner(keys={DOMAIN: [rsa_key]}).sign(MESSAGE, domain=DOMAIN)
    assert signed.endswith(MESSAGE)
    assert verify_each(signed, dns_for(rsa_key)) == [True]
    assert dkim.verify(signed, dnsfunc=dns_for(rsa_key))


def test_ed25519_signature_verifies(ed_key: DkimKey) -> None:
    signed = DkimSigner(keys={DOMAIN: [ed_key]}).sign(MESSAGE, domain=DOMAIN)
    assert verify_each(signed, dns_for(ed_key)) == [True]


def test_dual_signatures_both_verify(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    signed = DkimSigner(keys={DOMAIN: [rsa_key, ed_key]}).sign(MESSAGE, domain="MailStream.TEST")
    assert [tags(h)["a"] for h in signature_headers(signed)] == ["rsa-sha256", "ed25519-sha256"]
    assert verify_each(signed, dns_for(rsa_key, ed_key)) == [True, True]


def test_signature_tags(rsa_key: DkimKey) -> None:
    signer = DkimSigner(keys={DOMAIN: [rsa_key]}, now=lambda: 1_700_000_000.5)
    [header] = signature_headers(signer.sign(MESSAGE, domain=DOMAIN))
    found = tags(header)
    assert "l" not in found
    assert (found["v"], found["c"], found["d"], found["s"]) == (
        "1", "relaxed/relaxed", DOMAIN, "rsa2026",
    )  # fmt: skip
    assert found["t"] == "1700000000"
    assert found["h"].split(":") == [
        "from", "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
        "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post",
    ]  # fmt: skip
    assert all(len(line) <= 78 for line in header.split("\r\n"))


def test_tampered_body_fails(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    signed = DkimSigner(keys={DOMAIN: [rsa_key, ed_key]}).sign(MESSAGE, domain=DOMAIN)
    tampered = signed.replace(b"Thank you", b"Thank yoU")
    assert verify_each(tampered, dns_for(rsa_key, ed_key)) == [False, False]


def test_relaxed_canonicalization_survives_rewhitespacing(rsa_key: DkimKey) -> None:
    signed = DkimSigner(keys={DOMAIN: [rsa_key]}).sign(MESSAGE, domain=DOMAIN)
    rewrapped = signed.replace(b"Subject: Your  receipt", b"Subject:   Your receipt")
    assert verify_each(rewrapped, dns_for(rsa_key)) == [True]


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_second_from_breaks_signature(rsa_key: DkimKey, ed_key: DkimKey, where: str) -> None:
    # dkimpy's verifier also hashes an extra From on its own (its bug #644046 guard), so this
    # alone does not prove the over-signing: the h= check above and the Mail::DKIM integration
    # test (whose verifier has no such guard) do.
    signed = DkimSigner(keys={DOMAIN: [rsa_key, ed_key]}).sign(MESSAGE, domain=DOMAIN)
    head, body = signed.split(b"\r\n\r\n", 1)
    evil = b"From: Mallory <ceo@mailstream.test>\r\n"
    forged = evil + signed if where == "top" else head + b"\r\n" + evil + b"\r\n" + body
    assert verify_each(forged, dns_for(rsa_key, ed_key)) == [False, False]


def test_unknown_domain_is_returned_unchanged(rsa_key: DkimKey) -> None:
    assert DkimSigner(keys={DOMAIN: [rsa_key]}).sign(MESSAGE, domain="other.test") == MESSAGE


def test_repr_and_str_reveal_no_key_material(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    for key in (rsa_key, ed_key):
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        body = b"".join(pem.splitlines()[1:-1]).decode()
        for text in (repr(key), str(key), repr([key]), f"{key}"):
            assert "private_key" not in text
            assert body[:16] not in text and "BEGIN" not in text
    assert repr(rsa_key) == "DkimKey(selector='rsa2026', algorithm='rsa-sha256')"
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey)
    assert str(rsa_key.private_key.private_numbers().d) not in repr(rsa_key)


def test_load_rsa_pkcs1_and_pkcs8(tmp_path: Path, rsa_key: DkimKey) -> None:
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey)
    formats = {"pkcs1": serialization.PrivateFormat.TraditionalOpenSSL}
    formats["pkcs8"] = serialization.PrivateFormat.PKCS8
    for name, fmt in formats.items():
        path = tmp_path / f"{name}.pem"
        pem = rsa_key.private_key.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()
        )
        assert (b"BEGIN RSA PRIVATE KEY" in pem) == (name == "pkcs1")
        path.write_bytes(pem)
        loaded = load_key(path, selector="rsa2026", algorithm="rsa-sha256")
        assert isinstance(loaded.private_key, rsa.RSAPrivateKey)
        assert loaded.dns_txt_record() == rsa_key.dns_txt_record()
        signed = DkimSigner(keys={DOMAIN: [loaded]}).sign(MESSAGE, domain=DOMAIN)
        assert verify_each(signed, dns_for(rsa_key)) == [True]


def test_load_ed25519_dknewkey_seed_and_pem(tmp_path: Path) -> None:
    # dknewkey --ktype ed25519 writes the 32-byte seed in base64 via PyNaCl, as done here.
    nacl_key = nacl.signing.SigningKey.generate()
    seed_file = tmp_path / "ed.key"
    seed_file.write_bytes(nacl_key.encode(encoder=nacl.encoding.Base64Encoder) + b"\n")
    loaded = load_key(seed_file, selector="ed2026", algorithm="ed25519-sha256")
    public = base64.b64encode(bytes(nacl_key.verify_key)).decode()
    assert loaded.dns_txt_record() == f"v=DKIM1; k=ed25519; p={public}"

    pem_file = tmp_path / "ed.pem"
    assert isinstance(loaded.private_key, ed25519.Ed25519PrivateKey)
    pem_file.write_bytes(
        loaded.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    from_pem = load_key(pem_file, selector="ed2026", algorithm="ed25519-sha256")
    signed = DkimSigner(keys={DOMAIN: [from_pem]}).sign(MESSAGE, domain=DOMAIN)
    assert verify_each(signed, dns_for(loaded)) == [True]


def test_bad_keys_are_rejected(ed_key: DkimKey) -> None:
    with pytest.raises(ValueError, match="needs an RSA private key"):
        DkimKey(selector="x", algorithm="rsa-sha256", private_key=ed_key.private_key)
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(base64.b64encode(b"short"), selector="x", algorithm="ed25519-sha256")
    with pytest.raises(ValueError, match="must be PEM"):
        parse_key(b"garbage", selector="x", algorithm="rsa-sha256")
    with pytest.raises(ValueError, match="selector"):
        DkimKey(selector="a;b=c", algorithm="ed25519-sha256", private_key=ed_key.private_key)


def test_many_signatures_in_a_row(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    # A sanity check that repeated signing works and stays verifiable, not a timing assertion.
    signer = DkimSigner(keys={DOMAIN: [rsa_key, ed_key]})
    messages = [MESSAGE.replace(b"order 42", f"order {i}".encode()) for i in range(200)]
    signed = [signer.sign(m, domain=DOMAIN) for m in messages]
    assert verify_each(signed[-1], dns_for(rsa_key, ed_key)) == [True, True]
    assert len({s.split(b"\r\n\r\n")[0] for s in signed}) == 200


# --- the fast paths are dkimpy's canonicalization, byte for byte ------------------------------

_PIECES = st.sampled_from(
    [b" ", b"  ", b"\t", b" \t ", b"a", b"word", b"\r\n", b"\r\n\r\n", b"=2E", b".", b"\xc3\xa9",
     b"\r", b"\n", b":"]
)  # fmt: skip
_BODIES = st.lists(_PIECES, max_size=40).map(b"".join)
_HEADER_LINES = st.lists(
    st.tuples(
        st.sampled_from([b"From", b"To", b"Subject", b"X-Tag", b"DKIM-Signature"]),
        st.lists(st.sampled_from([b" a", b"  b", b"\tc", b"\r\n d", b"\r\n\te", b" "]), max_size=5),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(_BODIES)
def test_relaxed_body_is_dkimpys(body: bytes) -> None:
    assert relaxed_body(body) == CanonicalizationPolicy.from_c_value(
        b"relaxed/relaxed"
    ).canonicalize_body(body)


@settings(max_examples=500, deadline=None)
@given(_HEADER_LINES, _BODIES, st.booleans())
def test_parse_message_is_dkimpys(
    headers: list[tuple[bytes, list[bytes]]], body: bytes, separated: bool
) -> None:
    head = b"".join(name + b":" + b"".join(parts) + b"\r\n" for name, parts in headers)
    message = head + (b"\r\n" if separated else b"") + body
    try:
        expected = dkim.rfc822_parse(message)
    except dkim.MessageFormatError:
        with pytest.raises(dkim.MessageFormatError):
            parse_message(message)
        return
    assert parse_message(message) == expected


@settings(max_examples=500, deadline=None)
@given(_HEADER_LINES)
def test_relaxed_headers_are_dkimpys(headers: list[tuple[bytes, list[bytes]]]) -> None:
    pairs = [[name, b"".join(parts) + b"\r\n"] for name, parts in headers]
    pairs.append([b"X-Odd ", b" \t\r\n\r \n a\t\tb \r\n"])
    expected = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed").canonicalize_headers(pairs)
    assert relaxed_headers(pairs) == expected
