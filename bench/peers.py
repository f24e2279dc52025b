"""The benchmarks' peers: Postfix's smtp-sink as the receiving MX, a real Postfix relaying to
it, fed by smtp-source, as the reference mailstream is compared with, and the DNS server the
services resolve the MX with."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from bench.common import REPO, wait_until

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
DNSMASQ = "/usr/sbin/dnsmasq"
# What a benchmark's records live for: real MX and address records carry minutes to hours
# (the router keeps an answer for its TTL, up to MAILSTREAM_DNS__MAX_CACHE_TTL_S).
DNS_TTL_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _LoopbackServer:
    """A server process of the benchmark's own on a free loopback port: started, and taken
    for up once the port accepts connections; terminated on stop."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self.name, lambda: _listening(self.port), 10)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class SmtpSink(_LoopbackServer):
    """smtp-sink on loopback: answers 250 to everything and keeps nothing."""

    name = "smtp-sink"

    def argv(self) -> list[str]:
        # -u nobody: it refuses to run as root; 1024: the listen backlog.
        return [SINK, "-u", "nobody", f"127.0.0.1:{self.port}", "1024"]


class Dns(_LoopbackServer):
    """A dnsmasq of the benchmark's own on a loopback port, serving the local stack's zone
    (deploy/local/dnsmasq.conf) with every record's TTL `ttl_s`. The stack's dnsmasq gives its
    local records dnsmasq's default TTL of 0, which the tests want (nothing cached between
    them); under it the router looked up the MX of every message afresh (2 ms of an idle
    message's 23, and a query per message under load), which no real zone asks of it."""

    name = "dnsmasq"

    def __init__(self, *, ttl_s: int) -> None:
        super().__init__()
        self.ttl_s = ttl_s

    def argv(self) -> list[str]:
        return [
            DNSMASQ, "-k", f"--conf-file={REPO / 'deploy' / 'local' / 'dnsmasq.conf'}",
            f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--local=/test/", f"--local-ttl={self.ttl_s}",
            "--pid-file=",
        ]  # fmt: skip


class PostfixRelay:
    """A Postfix of its own (config, queue and log in a temporary folder) that accepts mail on
    a loopback port and relays all of it to the sink, 20 connections at most, reused."""

    def __init__(self, *, sink_port: int, concurrency: int = 20, hold: bool = False) -> None:
        """hold: queue everything and deliver nothing until release() (a backlog)."""
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bench-postfix-"))
        self.maillog = self.folder / "maillog"
        self._sink_port = sink_port
        self._concurrency = concurrency
        self._hold = hold

    def _configure(self) -> None:
        # postfix-script checks the install against postfix-files and dynamicmaps.cf beside
        # main.cf: start from the package's configuration, then replace main.cf and master.cf.
        shutil.copytree("/etc/postfix", self.folder, dirs_exist_ok=True)
        queue, data = self.folder / "queue", self.folder / "data"
        queue.mkdir()
        data.mkdir()
        shutil.chown(data, "postfix", "postfix")
        main = f"""
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
myhostname = bench.mailstream.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{self._sink_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = /dev/stdout
default_destination_concurrency_limit = {self._concurrency}
smtp_destination_concurrency_limit = {self._concurrency}
default_process_limit = {self._concurrency + 20}
smtp_connection_cache_on_demand = yes
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
defer_transports = {"smtp relay" if self._hold else ""}
"""
        (self.folder / "main.cf").write_text(main)
        master = Path("/etc/postfix/master.cf").read_text()
        # Listen on our port instead of 25; nothing chrooted (the queue has no chroot tree).
        master = re.sub(r"(?m)^smtp(\s+)inet", rf"127.0.0.1:{self.port}\1inet", master, count=1)
        lines = []
        for line in master.splitlines():
            fields = line.split()
            if len(fields) >= 8 and not line.startswith((" ", "\t", "#")) and fields[4] == "y":
                fields[4] = "n"
                line = "  ".join(fields)
            lines.append(line)
        (self.folder / "master.cf").write_text("\n".join(lines) + "\n")

    def __enter__(self) -> PostfixRelay:
        self._configure()
        # In the foreground, logging to stdout (our maillog file): `postfix start` in the
        # background needs a syslog or a running postlogd to report anything at all.
        self._log = self.maillog.open("wb")
        self._master = subprocess.Popen(
            [POSTFIX, "-c", str(self.folder), "start-fg"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until("postfix smtpd", lambda: _listening(self.port), 30)
        return self

    def release(self) -> None:
        """Deliver the held backlog now, as a queue runner would after an outage."""
        for argv in (
            ["postconf", "-c", str(self.folder), "-e", "defer_transports ="],
            [POSTFIX, "-c", str(self.folder), "reload"],
            ["postqueue", "-c", str(self.folder), "-f"],
        ):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def queued(self) -> int:
        """Messages in the queue (one file each under incoming, active and deferred)."""
        return sum(
            sum(1 for p in (self.folder / "queue" / q).rglob("*") if p.is_file())
            for q in ("incoming", "active", "deferred")
        )

    def sent(self) -> int:
        if not self.maillog.exists():
            return 0
        return self.maillog.read_text(errors="replace").count(" status=sent ")

    def send(self, *, messages: int, size: int, sessions: int = 20) -> subprocess.Popen[bytes]:
        """smtp-source: `messages` of `size` bytes over `sessions` parallel connections."""
        argv = [SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size)]
        # -d: reuse each connection for many messages.
        argv += ["-d", "-f", "hello@acme.mailstream.test", "-t", "postfix@inbox.mailstream.test"]
        return subprocess.Popen(
            [*argv, f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def pids(self) -> list[int]:
        """Every process of this Postfix (master and its children), found by config dir."""
        found = subprocess.run(["pgrep", "-f", str(self.folder)], capture_output=True, text=True)
        master = [int(p) for p in found.stdout.split()]
        children = subprocess.run(
            ["pgrep", "-P", ",".join(map(str, master)) or "0"], capture_output=True, text=True
        )
        return master + [int(p) for p in children.stdout.split()]

    def __exit__(self, *_: object) -> None:
        subprocess.run([POSTFIX, "-c", str(self.folder), "stop"], capture_output=True, timeout=60)
        try:
            self._master.wait(30)
        except subprocess.TimeoutExpired:
            self._master.kill()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
