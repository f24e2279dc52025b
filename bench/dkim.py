"""DKIM: signatures/s of mailstream's signer (a whole 4 KB message: canonicalization, hashing
and the signature) for RSA-2048 and Ed25519, against `openssl speed rsa2048 ed25519`, both on
one core (CPU 0) in the same run.

    python -m bench.dkim [--seconds 5] [--short]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bench.common import emit, quiet_logs
from services.mail.dkim import DkimKey, DkimSigner

DOMAIN = "bench.mailstream.test"
CORE = 0


def message(body_bytes: int = 4096) -> bytes:
    line = b"Your order 1234 has shipped and will arrive on Friday.  Thank you!\r\n"
    return (
        b"From: Bench <news@bench.mailstream.test>\r\nTo: <user@inbox.mailstream.test>\r\n"
        b"Subject: Order 1234 shipped\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
        b"Message-ID: <1234@bench.mailstream.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n" + line * (body_bytes // len(line))
    )


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second of this process (pinned to one core)."""
    for _ in range(20):  # warm up
        call()
    began, n = time.process_time(), 0
    while time.process_time() - began < seconds:
        for _ in range(20):
            call()
        n += 20
    return n / (time.process_time() - began)


def openssl_speed(seconds: int) -> dict[str, float]:
    done = subprocess.run(
        [
            "taskset",
            "-c",
            str(CORE),
            "openssl",
            "speed",
            "-seconds",
            str(seconds),
            "rsa2048",
            "ed25519",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rsa_line = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", done.stdout, re.M)
    ed_line = re.search(r"EdDSA \(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)", done.stdout)
    if rsa_line is None or ed_line is None:
        raise RuntimeError(f"unexpected openssl speed output:\n{done.stdout}")
    return {"rsa-sha256": float(rsa_line.group(1)), "ed25519-sha256": float(ed_line.group(1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--short", action="store_true", help="2 s per measurement")
    args = parser.parse_args()
    quiet_logs()
    seconds = 2.0 if args.short else args.seconds
    os.sched_setaffinity(0, {CORE})
    keys = {
        "rsa-sha256": DkimKey(
            selector="r", algorithm="rsa-sha256",
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ),
        "ed25519-sha256": DkimKey(
            selector="e", algorithm="ed25519-sha256",
            private_key=ed25519.Ed25519PrivateKey.generate(),
        ),
    }  # fmt: skip
    raw = message()
    ours: dict[str, dict[str, float]] = {}
    for algorithm, key in keys.items():
        signer = DkimSigner(keys={DOMAIN: [key]})
        ours[algorithm] = {
            "whole_message_per_s": round(
                rate(lambda s=signer: s.sign(raw, domain=DOMAIN), seconds), 1
            ),
            "signature_only_per_s": round(
                rate(lambda k=key: k.sign_digest(b"\0" * 32), seconds), 1
            ),
        }
    reference = openssl_speed(max(1, round(seconds)))
    result: dict[str, Any] = {
        "message_bytes": len(raw),
        "core": CORE,
        "mailstream": ours,
        "openssl_speed_sign_per_s": reference,
        "ratio_whole_message_to_openssl": {
            a: round(ours[a]["whole_message_per_s"] / reference[a], 3) for a in keys
        },
        # The signature alone, what `openssl speed` measures: the rest of the whole-message
        # rate is parsing, canonicalization and hashing in Python.
        "ratio_signature_only_to_openssl": {
            a: round(ours[a]["signature_only_per_s"] / reference[a], 3) for a in keys
        },
        # Issue 13: the whole 4 KB message at 0.9x `openssl speed` or better, both algorithms.
        "goal": {a: 0.9 for a in keys},
    }
    stem = emit("dkim", result, short=args.short)
    plot(result, stem)


def plot(result: dict[str, Any], stem: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, algorithm in zip(axes, ("rsa-sha256", "ed25519-sha256"), strict=True):
        ours = result["mailstream"][algorithm]
        values = [
            result["openssl_speed_sign_per_s"][algorithm],
            ours["signature_only_per_s"],
            ours["whole_message_per_s"],
        ]
        ax.bar(["openssl speed", "signature only", "whole 4 KB message"], values,
               color=["#999999", "#8fb3e8", "#3b7dd8"])  # fmt: skip
        ax.set_title(f"{algorithm}, one core")
        ax.set_ylabel("signatures/s")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
