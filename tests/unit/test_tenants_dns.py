"""`mailstream tenants dns`: the DKIM TXT records it prints hold the public halves of the
tenants' private keys, and everything else it prints is marked as a suggestion."""

from __future__ import annotations

import base64
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from services.cli.dns_records import TXT_CHUNK, txt_strings
from services.cli.main import cli
from services.common.errors import ConfigError
from services.mail.dkim import DkimSigner, load_key

RECORD = re.compile(r"^(\S+)\. (TXT|MX|PTR|A|AAAA) (.*)$")
QUOTED = re.compile(r'"([^"]*)"')


@dataclass(frozen=True)
class Keys:
    file: Path
    rsa: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """An RSA-2048 key (PEM) and an Ed25519 seed (base64, as dknewkey writes it)."""
    folder = tmp_path_factory.mktemp("dkim")
    private_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "acme.pem").write_bytes(
        private_rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_ed = ed25519.Ed25519PrivateKey.generate()
    seed = private_ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    (folder / "acme-ed.key").write_bytes(base64.b64encode(seed))
    (folder / "tenants.yaml").write_text(
        "tenants:\n"
        "  - id: acme\n"
        "    return_path_domain: bounces.acme.example\n"
        "    sender_domains:\n"
        "      - domain: acme.example\n"
        "        dkim:\n"
        "          - {selector: s1, algorithm: rsa-sha256, private_key_file: acme.pem}\n"
        "          - {selector: e1, algorithm: ed25519-sha256, private_key_file: acme-ed.key}\n"
        "  - id: other\n"
        "    sender_domains:\n"
        "      - domain: other.example\n"
    )
    return Keys(file=folder / "tenants.yaml", rsa=private_rsa, ed=private_ed)


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["tenants", "dns", *args], catch_exceptions=False)
    return done.exit_code, done.output


def records(output: str) -> list[tuple[str, str, str, str]]:
    """(comment, name, type, rdata) of each record line, with the comment line above it."""
    lines = output.splitlines()
    found = []
    for above, line in itertools.pairwise(lines):
        match = RECORD.match(line)
        if match:
            assert above.startswith("; "), line
            found.append((above, *match.groups()))
    return found


def txt_value(rdata: str) -> str:
    strings = QUOTED.findall(rdata)
    assert all(len(s) <= TXT_CHUNK for s in strings)
    return "".join(strings)


def test_the_dkim_records_hold_the_private_keys_public_halves(keys: Keys) -> None:
    code, output = run("-f", str(keys.file), "--tenant", "acme")
    assert code == 0, output
    dkim_txt = {
        name: txt_value(rdata) for _, name, kind, rdata in records(output) if "_domainkey" in name
    }
    assert set(dkim_txt) == {"s1._domainkey.acme.example", "e1._domainkey.acme.example"}

    rsa_tags = dict(
        t.strip().split("=", 1) for t in dkim_txt["s1._domainkey.acme.example"].split(";")
    )
    assert rsa_tags["v"] == "DKIM1" and rsa_tags["k"] == "rsa"
    published = serialization.load_der_public_key(base64.b64decode(rsa_tags["p"]))
    assert published.public_numbers() == keys.rsa.public_key().public_numbers()

    ed_tags = dict(
        t.strip().split("=", 1) for t in dkim_txt["e1._domainkey.acme.example"].split(";")
    )
    assert ed_tags["k"] == "ed25519"
    raw = keys.ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(ed_tags["p"]) == raw and len(raw) == 32


def test_a_verifier_given_the_printed_records_accepts_the_senders_signatures(
    keys: Keys,
) -> None:
    _, output = run("-f", str(keys.file))
    zone = {
        f"{name}.".encode(): txt_value(rdata).encode()
        for _, name, kind, rdata in records(output)
        if kind == "TXT"
    }
    folder = keys.file.parent
    signer = DkimSigner(
        keys={
            "acme.example": [
                load_key(folder / "acme.pem", selector="s1", algorithm="rsa-sha256"),
                load_key(folder / "acme-ed.key", selector="e1", algorithm="ed25519-sha256"),
            ]
        }
    )
    message = b"From: a@acme.example\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
    signed = signer.sign(message, domain="acme.example")
    for idx in range(2):
        assert dkim.DKIM(signed).verify(idx=idx, dnsfunc=lambda name, timeout=5: zone.get(name))


def test_only_the_dkim_records_are_not_suggestions(keys: Keys) -> None:
    code, output = run(
        "-f", str(keys.file), "--egress-ip", "192.0.2.10", "--egress-ip", "2001:db8::25",
        "--helo-name", "mta1.acme.example", "--bounce-mx", "mx.bounces.acme.example",
    )  # fmt: skip
    assert code == 0, output
    found = records(output)
    for comment, name, _, _ in found:
        assert comment.startswith("; suggested: ") == ("_domainkey" not in name), comment
    by_key = {(name, kind): rdata for _, name, kind, rdata in found}
    spf = "v=spf1 ip4:192.0.2.10 ip6:2001:db8::25 -all"
    assert txt_value(by_key[("bounces.acme.example", "TXT")]) == spf
    assert by_key[("bounces.acme.example", "MX")] == "10 mx.bounces.acme.example."
    assert txt_value(by_key[("_dmarc.acme.example", "TXT")]).startswith("v=DMARC1; p=none;")
    assert txt_value(by_key[("_dmarc.other.example", "TXT")]).startswith("v=DMARC1; p=none;")
    assert txt_value(by_key[("other.example", "TXT")]) == spf  # its own envelope domain
    assert by_key[("10.2.0.192.in-addr.arpa", "PTR")] == "mta1.acme.example."
    assert by_key[("mta1.acme.example", "A")] == "192.0.2.10"
    assert by_key[("mta1.acme.example", "AAAA")] == "2001:db8::25"


def test_unknown_tenants_and_bad_addresses_are_refused(keys: Keys) -> None:
    """ConfigError: `mailstream` prints it as one `error:` line and exits 2."""
    with pytest.raises(ConfigError, match="no tenant nobody"):
        run("-f", str(keys.file), "--tenant", "nobody")
    with pytest.raises(ConfigError, match="--egress-ip"):
        run("-f", str(keys.file), "--egress-ip", "mta.example")


def test_long_values_split_into_strings_of_at_most_255_octets() -> None:
    assert txt_strings("a" * 600) == ["a" * 255, "a" * 255, "a" * 90]
    assert txt_strings("short") == ["short"]
