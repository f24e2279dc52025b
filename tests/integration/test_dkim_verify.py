"""Our DKIM signatures checked by independent verifiers over real DNS: Perl Mail::DKIM, and
Go's emersion/go-msgauth (tests/tools/dkimverify), as well as dkimpy.

Mail::DKIM 1.20230212 (Debian 12's libmail-dkim-perl) has no Ed25519: its Signature.pm knows only
rsa-sha1 and rsa-sha256 and reports "invalid (unsupported algorithm ed25519-sha256)". So the RSA
signature must pass there, and both must pass go-msgauth and dkimpy over the same dnsmasq.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from services.mail import dkim as sender_dkim
from services.mail.dkim import DkimKey, DkimSigner
from tests.integration.dkim_dns import (
    Dnsmasq,
    MailDkimResult,
    free_port,
    go_dkim_verify,
    mail_dkim_verify,
)

pytestmark = pytest.mark.integration

DOMAIN = "mailstream.test"  # RFC 6761: only our dnsmasq can answer for it
MESSAGE = (
    b"From: Acme <noreply@mailstream.test>\r\n"
    b"To: Someone <someone@example.org>\r\n"
    b"Subject: Your receipt\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <42@mailstream.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"List-Unsubscribe: <https://mailstream.test/u/42>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n" + b"Thank you for your order.\r\n" * 150
)
EXPECTED_ED25519 = "invalid (unsupported algorithm ed25519-sha256)"


@pytest.fixture(scope="module")
def keys() -> list[DkimKey]:
    return [
        DkimKey(
            selector="rsa2026",
            algorithm="rsa-sha256",
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ),
        DkimKey(
            selector="ed2026",
            algorithm="ed25519-sha256",
            private_key=ed25519.Ed25519PrivateKey.generate(),
        ),
    ]


@pytest.fixture(scope="module")
def dnsmasq(keys: list[DkimKey]) -> Iterator[Dnsmasq]:
    server = Dnsmasq(
        records={f"{k.selector}._domainkey.{DOMAIN}": k.dns_txt_record() for k in keys}
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def dkimpy_over_dns(message: bytes, dnsmasq: Dnsmasq) -> list[bool]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dnsmasq.port

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        return b"".join(b"".join(r.strings) for r in answer)

    results = []
    for idx in range(message.split(b"\r\n\r\n", 1)[0].count(b"DKIM-Signature:")):
        try:
            results.append(bool(dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # e.g. a body hash mismatch raises instead of returning
            results.append(False)
    return results


def by_algorithm(results: list[MailDkimResult]) -> dict[str, str]:
    return {r.algorithm: r.detail for r in results}


def test_mail_dkim_passes_rsa_and_dkimpy_passes_both(keys: list[DkimKey], dnsmasq: Dnsmasq) -> None:
    signed = DkimSigner(keys={DOMAIN: keys}).sign(MESSAGE, domain=DOMAIN)
    results = mail_dkim_verify(signed, env=dnsmasq.mail_dkim_env())
    assert [(r.algorithm, r.selector) for r in results] == [
        ("rsa-sha256", "rsa2026"),
        ("ed25519-sha256", "ed2026"),
    ]
    assert by_algorithm(results) == {"rsa-sha256": "pass", "ed25519-sha256": EXPECTED_ED25519}
    assert dkimpy_over_dns(signed, dnsmasq) == [True, True]
    go = go_dkim_verify(signed, dns_port=dnsmasq.port)
    assert [(r.algorithm, r.selector, r.result) for r in go] == [
        ("rsa-sha256", "rsa2026", "pass"),
        ("ed25519-sha256", "ed2026", "pass"),
    ]


def test_tampered_body_fails(keys: list[DkimKey], dnsmasq: Dnsmasq) -> None:
    signed = DkimSigner(keys={DOMAIN: keys}).sign(MESSAGE, domain=DOMAIN)
    tampered = signed.replace(b"Thank you", b"Thank yoU", 1)
    results = by_algorithm(mail_dkim_verify(tampered, env=dnsmasq.mail_dkim_env()))
    assert results["rsa-sha256"] == "fail (body has been altered)"
    assert dkimpy_over_dns(tampered, dnsmasq) == [False, False]
    assert [r.result for r in go_dkim_verify(tampered, dns_port=dnsmasq.port)] == ["fail"] * 2


def test_tampered_header_fails(keys: list[DkimKey], dnsmasq: Dnsmasq) -> None:
    signed = DkimSigner(keys={DOMAIN: keys}).sign(MESSAGE, domain=DOMAIN)
    tampered = signed.replace(b"Subject: Your receipt", b"Subject: Your invoice")
    results = by_algorithm(mail_dkim_verify(tampered, env=dnsmasq.mail_dkim_env()))
    assert results["rsa-sha256"] == "fail (message has been altered)"
    assert dkimpy_over_dns(tampered, dnsmasq) == [False, False]
    assert [r.result for r in go_dkim_verify(tampered, dns_port=dnsmasq.port)] == ["fail"] * 2


@pytest.mark.parametrize(("oversign", "expected"), [(True, "fail"), (False, "pass")])
def test_over_signed_from_blocks_a_second_from(
    keys: list[DkimKey],
    dnsmasq: Dnsmasq,
    monkeypatch: pytest.MonkeyPatch,
    oversign: bool,
    expected: str,
) -> None:
    # Mail::DKIM, unlike dkimpy, does not hash extra From fields on its own, so the control
    # (no over-signing) passes with a From added on top and shows that over-signing is the guard.
    if not oversign:
        monkeypatch.setattr(sender_dkim, "OVERSIGNED_HEADERS", frozenset())
    signed = DkimSigner(keys={DOMAIN: keys[:1]}).sign(MESSAGE, domain=DOMAIN)
    forged = b"From: Mallory <ceo@mailstream.test>\r\n" + signed
    [result] = mail_dkim_verify(forged, env=dnsmasq.mail_dkim_env())
    assert result.result == expected


def test_mail_dkim_uses_only_the_resolver_we_point_it_at(keys: list[DkimKey]) -> None:
    # Net::DNS honours RES_NAMESERVERS/RES_OPTIONS: pointed at a port nobody serves, no key.
    signed = DkimSigner(keys={DOMAIN: keys[:1]}).sign(MESSAGE, domain=DOMAIN)
    env = {
        **os.environ,
        "RES_NAMESERVERS": "127.0.0.1",
        "RES_OPTIONS": f"port:{free_port()} retry:1 retrans:1",
    }
    [result] = mail_dkim_verify(signed, env=env)
    assert result.result == "invalid"
    assert result.detail.startswith("invalid (public key:")
