"""Demo DKIM keys for the local stack: creates them once under STATE/dkim, and writes the
demo tenants file that uses them and the dnsmasq file that publishes their public halves."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from services.cli.dns_records import txt_strings
from services.mail.dkim import load_key

DOMAIN = "demo.mailstream.test"
KEYS = (("s2026", "rsa-sha256", "demo-rsa.pem"), ("e2026", "ed25519-sha256", "demo-ed25519.key"))


def create(path: Path, algorithm: str) -> None:
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    else:
        seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        data = base64.b64encode(seed)
    path.touch(mode=0o600)
    path.write_bytes(data)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    dns_lines, dkim_lines = ["# Written by deploy/local/dkim_keys.py: the demo DKIM keys."], []
    for selector, algorithm, name in KEYS:
        path = folder / name
        if not path.exists():
            create(path, algorithm)
        record = load_key(path, selector=selector, algorithm=algorithm).dns_txt_record()
        chunks = ",".join(f'"{s}"' for s in txt_strings(record))
        dns_lines.append(f"txt-record={selector}._domainkey.{DOMAIN},{chunks}")
        dkim_lines.append(
            f"          - {{selector: {selector}, algorithm: {algorithm}, "
            f"private_key_file: {path}}}"
        )
    (folder / "dnsmasq.conf").write_text("\n".join(dns_lines) + "\n")
    (folder / "tenants.yaml").write_text(
        "\n".join(
            [
                "# The demo tenant of the local stack (written by deploy/local/dkim_keys.py).",
                "tenants:",
                "  - id: demo",
                "    sender_domains:",
                f"      - domain: {DOMAIN}",
                "        dkim:",
                *dkim_lines,
                "    limits: {bulk_per_second: 50}",
            ]
        )
        + "\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
