"""Real peers for integration tests: a recording SMTP server, service processes, collectors."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from services.client import EmailClient, Priority, new_request
from services.common.config import KafkaSettings
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Inbound, Output
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import producer_config

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float = 0.0  # time.time() when the message was accepted
    peer: str = ""  # the client's source address
    login: str | None = None  # the user the client authenticated as, if it did
    tls: bool = False  # whether the session was under STARTTLS


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.scripted: dict[str, list[str]] = {}  # recipient -> replies to RCPT, in order
        self.rcpt_log: list[tuple[float, str, str]] = []  # (time, recipient, reply)
        # Called with each message just before its 250 goes out (chaos tests kill on it).
        self.on_message: Callable[[Received], None] | None = None

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _options: list[str],
    ) -> str:
        with self.lock:
            script = self.scripted.get(address)
            reply = script.pop(0) if script else "250 2.1.5 Ok"
            self.rcpt_log.append((time.time(), address, reply))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.auth_data if session.authenticated else None
        with self.lock:
            received = Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                envelope.original_content or b"",
                time.time(),
                peer=str(session.peer[0]) if session.peer else "",
                login=login.decode() if isinstance(login, bytes) else login,
                tls=session.ssl is not None,
            )
            self.messages.append(received)
            hook = self.on_message
        if hook is not None:
            hook(received)
        return "250 2.0.0 Ok: recorded"


class _Authenticator:
    def __init__(self, credentials: tuple[str, str]) -> None:
        self._credentials = credentials

    def __call__(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        user = data.login.decode() if isinstance(data, LoginPassword) else ""
        password = data.password.decode() if isinstance(data, LoginPassword) else ""
        ok = (user, password) == self._credentials
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class RecordingSmtp:
    """An aiosmtpd server on loopback that keeps the raw bytes of every message."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """credentials: the one (user, password) AUTH accepts, and then requires."""
        self.port = free_port()
        self._recorder = _Recorder()
        auth: dict[str, Any] = {}
        if credentials is not None:
            auth = {
                "authenticator": _Authenticator(credentials),
                "auth_required": True,
                "auth_require_tls": tls_context is not None,
            }
        self._controller = Controller(
            self._recorder,
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            enable_SMTPUTF8=True,
            tls_context=tls_context,
            require_starttls=False,
            **auth,
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Received]:
        with self._recorder.lock:
            return list(self._recorder.messages)

    def on_message(self, hook: Callable[[Received], None] | None) -> None:
        """hook(message) runs as each message is accepted, just before its 250 is sent."""
        with self._recorder.lock:
            self._recorder.on_message = hook

    def script_rcpt(self, recipient: str, replies: list[str]) -> None:
        """The next RCPT TO replies for recipient; 250 once they run out."""
        with self._recorder.lock:
            self._recorder.scripted[recipient] = list(replies)

    def rcpt_replies(self, recipient: str) -> list[tuple[float, str]]:
        with self._recorder.lock:
            return [(t, r) for t, a, r in self._recorder.rcpt_log if a == recipient]


class ServiceProcess:
    def __init__(self, *, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count_in_log(self, needle: str) -> int:
        return self.log_text().count(needle)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health_port(self) -> int | None:
        """The port this run of the service listens on for /livez, /readyz and /metrics."""
        port = None
        for line in self.log_text().splitlines():
            if '"health_listening"' in line:
                port = int(json.loads(line)["port"])  # the latest run's, after a restart
        return port

    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET from the health listener; (0, b"") when it does not answer."""
        port = self.health_port()
        if port is None:
            return 0, b""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (OSError, urllib.error.URLError):
            return 0, b""

    def readiness(self) -> tuple[int, dict[str, Any]]:
        status, body = self.http_get("/readyz")
        return status, (json.loads(body) if body else {})

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class TopicCollector:
    """Reads topics from the start with the project's own runner (the one module that polls
    Kafka) on a thread of its own, keeping each record decoded by `decode`."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: list[str],
        group_id: str,
        decode: Callable[[Inbound], Any],
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._group = group_id
        self._decode = decode
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    async def _handle(self, inbound: Inbound) -> list[Output]:
        item = self._decode(inbound)
        with self._lock:
            self._items.append(item)
        return []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            producer = AsyncProducer(config=producer_config(self._kafka))
            producer.start()
            lane = Lane(
                name="test-collector",
                group_id=self._group,
                topics=self._topics,
                handler=self._handle,
                dlq_topic="unused",
            )
            try:
                await run_lanes(
                    lanes=[lane], settings=self._kafka, producer=producer, stop=self._stop
                )
            finally:
                await producer.close()

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc

    def start(self) -> None:
        self._thread.start()
        wait_until("collector loop", lambda: self._stop is not None, 10)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def items(self) -> list[Any]:
        if self._error is not None:
            raise AssertionError(f"collector failed: {self._error!r}")
        with self._lock:
            return list(self._items)

    def wait_for(
        self, what: str, check: Callable[[list[Any]], bool], timeout: float = 60
    ) -> list[Any]:
        wait_until(what, lambda: check(self.items), timeout)
        return self.items


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTREAM_")}
    for line in (REPO / "deploy" / "local" / "dev.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    # Many copies of each service run side by side here: each takes a free health port.
    env["MAILSTREAM_HEALTH__HOST"] = "127.0.0.1"
    env["MAILSTREAM_HEALTH__PORT"] = "0"
    env.update(overrides)
    return env


def events_for(items: list[Any], message_id: str) -> list[Any]:
    return [e for e in items if e.message_id == message_id]


def send_message(
    client: EmailClient,
    to: str,
    *,
    priority: Priority = Priority.TRANSACTIONAL,
    tenant_id: str = "acme",
    from_address: str = "hello@acme.mailstream.test",
    **fields: Any,
) -> str:
    """Publishes one inline request with a fresh message_id (also in its subject)."""
    mid = f"m-{uuid.uuid4().hex[:10]}"
    client.send(
        new_request(
            tenant_id=tenant_id,
            from_address=from_address,
            to=to,
            message_id=mid,
            subject=f"subject {mid}",
            text_body="x",
            **fields,
        ),
        priority=priority,
    )
    return mid


def until_terminal(events: TopicCollector, mid: str, timeout: float = 60) -> list[Any]:
    """The message's events, once one of them is terminal."""
    items = events.wait_for(
        f"a terminal event for {mid}",
        lambda xs: any(e.type.terminal for e in events_for(xs, mid)),
        timeout=timeout,
    )
    return events_for(items, mid)


def mailstream(
    env: dict[str, str], *args: str, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs the `mailstream` operator command as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


class PolicyServer:
    """An HTTPS server on loopback answering `GET /.well-known/mta-sts.txt` per Host header
    with the policies it is given: the MTA-STS policy hosts of the test domains."""

    def __init__(self, *, tls_context: ssl.SSLContext, policies: dict[str, str]) -> None:
        self.port = free_port()
        self.policies = {f"mta-sts.{d}": body for d, body in policies.items()}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                server.requests.append(host)
                body = server.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                raw = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.socket = tls_context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
