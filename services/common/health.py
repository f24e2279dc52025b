"""Liveness, readiness and Prometheus metrics over one small HTTP listener per service.

GET /livez answers 200 while the event loop runs; GET /readyz 200 only while every named
check holds (Kafka metadata reachable, Cassandra connected, ...), else 503 with the failing
checks as JSON; GET /metrics is the Prometheus text format of the default registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.errors import ConfigError
from services.common.lifecycle import os_reason
from services.common.logging import get_logger
from services.common.metrics import READY_CHECK

log = get_logger(__name__)
_MAX_REQUEST_BYTES = 8192


@dataclass
class _Check:
    ok: bool
    detail: str
    since: float


class Health:
    """Named readiness checks; the service is ready when all of them hold."""

    def __init__(self, *, service: str, required: tuple[str, ...] = ()) -> None:
        self.service = service
        now = time.monotonic()
        self._checks = {name: _Check(False, "not checked yet", now) for name in required}
        for name in required:
            READY_CHECK.labels(name).set(0)

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        READY_CHECK.labels(name).set(1 if ok else 0)
        previous = self._checks.get(name)
        if previous is None or previous.ok != ok:
            log.info("readiness_changed", check=name, ok=ok, detail=detail[:200])
            self._checks[name] = _Check(ok, detail, time.monotonic())
        else:
            previous.detail = detail

    def holds(self, name: str) -> bool:
        """Whether the named check holds now (an unknown check: not known to fail)."""
        check = self._checks.get(name)
        return check is None or check.ok

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self._checks.values())

    def report(self) -> dict[str, object]:
        now = time.monotonic()
        return {
            "service": self.service,
            "ready": self.ready,
            "checks": {
                name: {"ok": c.ok, "detail": c.detail, "for_s": round(now - c.since, 1)}
                for name, c in sorted(self._checks.items())
            },
        }


class HealthServer:
    """The listener; port 0 takes any free port (the log line health_listening names it)."""

    def __init__(self, *, health: Health, host: str, port: int) -> None:
        self._health = health
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """ConfigError when the address cannot be listened on (in use, not local, privileged):
        the operator's to mend, so one line, not a traceback."""
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self._host}:{self._port} for /livez, /readyz and /metrics:"
                f" {os_reason(exc)} (set by MAILSTREAM_HEALTH__HOST and MAILSTREAM_HEALTH__PORT)"
            ) from None
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("health_listening", host=self._host, port=port)
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            if len(head) > _MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, ctype, body = self._route(method, path.split("?", 1)[0])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}[status]  # fmt: skip
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/livez":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            report = json.dumps(self._health.report()).encode() + b"\n"
            return (200 if self._health.ready else 503), "application/json", report
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        return 404, "text/plain", b"not found\n"
