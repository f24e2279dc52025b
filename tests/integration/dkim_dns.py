"""A private dnsmasq serving TXT records on a free localhost port, and Mail::DKIM pointed at it."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver

from services.cli.dns_records import txt_strings

DNSMASQ = "/usr/sbin/dnsmasq"

# Reads a message on stdin, prints one "algorithm selector result detail" line per signature.
MAIL_DKIM_VERIFY = r"""
use strict; use warnings; use Mail::DKIM::Verifier;
my $dkim = Mail::DKIM::Verifier->new();
while (<STDIN>) { s/\015?\012$//; $dkim->PRINT("$_\015\012"); }
$dkim->CLOSE;
for my $sig ($dkim->signatures) {
    printf "%s %s %s %s\n", $sig->algorithm, $sig->selector, $sig->result, $sig->result_detail;
}
"""


@dataclass(frozen=True)
class MailDkimResult:
    algorithm: str
    selector: str
    result: str
    detail: str


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def txt_arg(name: str, value: str) -> str:
    """`name,chunk1,chunk2`: given in argv (no shell), dnsmasq would keep quotes literally."""
    if "," in value or '"' in value:
        raise ValueError("a TXT value given to dnsmasq in argv cannot hold commas or quotes")
    return ",".join([name, *txt_strings(value)])


class Dnsmasq:
    """dnsmasq in the foreground, answering only the TXT records it was given."""

    def __init__(self, *, records: dict[str, str]) -> None:
        self.port = free_port()
        self._records = records
        args = [
            DNSMASQ, "-k", "--no-resolv", "--no-hosts", "--bind-interfaces",
            "--listen-address=127.0.0.1", f"--port={self.port}", "--conf-file=/dev/null",
            "--pid-file=", "--user=root", "--log-facility=-",
        ]  # fmt: skip
        args += [f"--txt-record={txt_arg(n, v)}" for n, v in records.items()]
        self._process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def wait_ready(self, *, timeout: float = 10.0) -> None:
        """Until every record is answered, whole, by a real DNS query."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        deadline = time.monotonic() + timeout
        pending = dict(self._records)
        while pending:
            if self._process.poll() is not None:
                out = self._process.stdout.read() if self._process.stdout else ""
                raise RuntimeError(f"dnsmasq exited with {self._process.returncode}: {out}")
            name, value = next(iter(pending.items()))
            try:
                answer = resolver.resolve(name, "TXT", lifetime=1.0)
                text = b"".join(b"".join(r.strings) for r in answer).decode()
                if text != value:
                    raise RuntimeError(f"dnsmasq answered {name} with {text!r}")
                del pending[name]
            except (dns.exception.Timeout, dns.resolver.NoNameservers):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def mail_dkim_env(self) -> dict[str, str]:
        """Net::DNS reads these (Net/DNS/Resolver/Base.pm `_read_env`), so Mail::DKIM asks us."""
        return {**os.environ, "RES_NAMESERVERS": "127.0.0.1", "RES_OPTIONS": f"port:{self.port}"}

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()


def _results(stdout: bytes) -> list[MailDkimResult]:
    """One "algorithm selector result detail" line per signature, as both verifiers print."""
    results = []
    for line in stdout.decode().splitlines():
        algorithm, selector, result, detail = [*line.split(" ", 3), ""][:4]
        results.append(MailDkimResult(algorithm, selector, result, detail))
    return results


def mail_dkim_verify(message: bytes, *, env: dict[str, str]) -> list[MailDkimResult]:
    done = subprocess.run(
        ["perl", "-e", MAIL_DKIM_VERIFY],
        input=message,
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return _results(done.stdout)


GO_VERIFIER_SOURCE = Path(__file__).resolve().parents[1] / "tools" / "dkimverify"


def go_dkim_verifier() -> Path:
    """Builds tests/tools/dkimverify (emersion/go-msgauth, from the Go module proxy) once per
    source version, under .state/bin: the independent verifier that knows Ed25519."""
    sources = [
        *sorted(GO_VERIFIER_SOURCE.glob("*.go")),
        GO_VERIFIER_SOURCE / "go.mod",
        GO_VERIFIER_SOURCE / "go.sum",
    ]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    binary = GO_VERIFIER_SOURCE.parents[2] / ".state" / "bin" / f"dkimverify-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-trimpath", "-o", str(binary), "."],
            cwd=GO_VERIFIER_SOURCE,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return binary


def go_dkim_verify(message: bytes, *, dns_port: int) -> list[MailDkimResult]:
    """Each signature as go-msgauth judges it, keys looked up only at 127.0.0.1:dns_port."""
    done = subprocess.run(
        [str(go_dkim_verifier()), "-dns", f"127.0.0.1:{dns_port}"],
        input=message,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return _results(done.stdout)
