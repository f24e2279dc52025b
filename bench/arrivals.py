"""An aiosmtpd MX for the latency benchmarks that keeps only when each marked message arrived
(its Subject names it), and a count of the rest: a 100,000-message backlog stays small."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.peers import free_port

_MARK = re.compile(rb"(?im)^Subject:[^\r\n]*\b(probe-[\w.-]+)")


class _Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived: dict[str, float] = {}
        self.others = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        match = _MARK.search(data[:4096])
        with self.lock:
            if match:
                self.arrived.setdefault(match.group(1).decode(), time.time())
            else:
                self.others += 1
        return "250 2.0.0 Ok: queued"


class ArrivalsMx:
    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Handler()
        self._controller = Controller(
            self._handler, hostname="127.0.0.1", port=self.port, data_size_limit=None
        )

    def __enter__(self) -> ArrivalsMx:
        self._controller.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._controller.stop()

    def arrived(self) -> dict[str, float]:
        with self._handler.lock:
            return dict(self._handler.arrived)

    @property
    def others(self) -> int:
        with self._handler.lock:
            return self._handler.others
