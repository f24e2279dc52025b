"""A scripted SMTP server for connection-level faults: each connection follows the next fault
of its plan (421 at connect, a dropped connection, silence, a broken STARTTLS, a disconnect in
DATA), then the server behaves; replies may be slowed and DATA replies scripted per recipient.

It speaks just enough SMTP (RFC 5321) for aiosmtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT and an optional STARTTLS it never completes. It runs its own event loop on a thread, like
aiosmtpd's Controller, so that a test can block while the services talk to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

_ADDRESS = re.compile(r"<([^>]*)>")


class Fault(enum.Enum):
    NONE = "none"  # a well-behaved server
    GREET_421 = "421 at connect"  # "421 ..." instead of the 220 greeting, then close
    DROP_AT_CONNECT = "drop at connect"  # accept the TCP connection and close it at once
    SILENT = "no reply"  # accept and never say a word; wait for the client to give up
    TLS_BROKEN = "TLS handshake failure"  # "220 Ready to start TLS", then bytes that are not TLS
    DROP_IN_DATA = "disconnect in DATA"  # 354, read the first line of the message, close
    DROP_AFTER_DOT = "disconnect after the final dot"  # the whole message, then close, no reply


@dataclass
class Connection:
    """What happened on one connection: the fault it got, the verbs the client sent."""

    fault: Fault
    opened_at: float
    verbs: list[str] = field(default_factory=list)
    closed_at: float | None = None
    # The message bytes read before the server dropped the connection (DROP_* faults).
    dropped: bytes = b""


@dataclass(frozen=True)
class Accepted:
    """A message the server answered 250 to at the end of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float


class FaultySmtp:
    """One scripted SMTP server on host:port (a loopback address of its own)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        name: str,
        offer_starttls: bool = False,
        greeting_delay_s: float = 0.0,
        reply_delay_s: float = 0.0,
        greeting_421: str = "421 4.3.2 Service not available, closing transmission channel",
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self._offer_starttls = offer_starttls
        self._greeting_delay_s = greeting_delay_s
        self._reply_delay_s = reply_delay_s
        self._greeting_421 = greeting_421
        self._lock = threading.Lock()
        self._plan: list[Fault] = []
        self._always: Fault | None = None
        self._data_replies: dict[str, list[str]] = {}
        self._connections: list[Connection] = []
        self._accepted: list[Accepted] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=name)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, self.port, reuse_address=True),
            self._loop,
        )
        self._server = started.result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            if self._server is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), 5)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def plan(self, *faults: Fault, always: Fault | None = None) -> None:
        """The next connections get these faults in order, then `always` (or none)."""
        with self._lock:
            self._plan = list(faults)
            self._always = always

    def script_data(self, recipient: str, replies: list[str]) -> None:
        """The next end-of-DATA replies for transactions to recipient; 250 once they run out."""
        with self._lock:
            self._data_replies[recipient] = list(replies)

    @property
    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections)

    @property
    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    def accepted_with(self, needle: bytes) -> list[Accepted]:
        return [m for m in self.accepted if needle in m.data]

    # ------------------------------------------------------------------ the server (its loop)

    def _next_fault(self) -> Fault:
        with self._lock:
            if self._plan:
                return self._plan.pop(0)
            return self._always or Fault.NONE

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(fault=self._next_fault(), opened_at=time.time())
        with self._lock:
            self._connections.append(conn)
        self._writers.add(writer)
        try:
            await self._session(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left first: nothing to answer
        finally:
            conn.closed_at = time.time()
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _reply(self, writer: asyncio.StreamWriter, *lines: str) -> None:
        if self._reply_delay_s:
            await asyncio.sleep(self._reply_delay_s)
        writer.write("".join(f"{line}\r\n" for line in lines).encode())
        await writer.drain()

    async def _session(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fault = conn.fault
        if fault is Fault.DROP_AT_CONNECT:
            return
        if fault is Fault.SILENT:
            while await reader.read(4096):  # until the client hangs up
                pass
            return
        if self._greeting_delay_s:
            await asyncio.sleep(self._greeting_delay_s)
        if fault is Fault.GREET_421:
            writer.write(f"{self._greeting_421}\r\n".encode())
            await writer.drain()
            return
        await self._reply(writer, f"220 {self.name} ESMTP scripted faults")
        mail_from: str | None = None
        rcpts: list[str] = []
        while line := await reader.readline():
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            conn.verbs.append(verb)
            if verb == "EHLO":
                extensions = ["8BITMIME", "SMTPUTF8"]
                if self._offer_starttls:
                    extensions.append("STARTTLS")
                await self._reply(
                    writer, f"250-{self.name}", *(f"250-{e}" for e in extensions[:-1]),
                    f"250 {extensions[-1]}",
                )  # fmt: skip
            elif verb == "HELO":
                await self._reply(writer, f"250 {self.name}")
            elif verb == "STARTTLS" and self._offer_starttls:
                if fault is Fault.TLS_BROKEN:
                    await self._reply(writer, "220 2.0.0 Ready to start TLS")
                    # Not a ServerHello: the client's handshake fails on the record header.
                    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not TLS\r\n")
                    await writer.drain()
                    return
                await self._reply(writer, "454 4.7.0 TLS not available due to temporary reason")
            elif verb == "MAIL":
                found = _ADDRESS.search(command)
                mail_from, rcpts = (found.group(1) if found else ""), []
                await self._reply(writer, "250 2.1.0 Ok")
            elif verb == "RCPT":
                found = _ADDRESS.search(command)
                if mail_from is None or not found:
                    await self._reply(writer, "503 5.5.1 Error: need MAIL command")
                    continue
                rcpts.append(found.group(1))
                await self._reply(writer, "250 2.1.5 Ok")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    await self._reply(writer, "503 5.5.1 Error: need RCPT command")
                    continue
                await self._reply(writer, "354 End data with <CR><LF>.<CR><LF>")
                if fault is Fault.DROP_IN_DATA:
                    conn.dropped = await reader.readline()
                    return
                data = await _read_data(reader)
                if fault is Fault.DROP_AFTER_DOT:
                    conn.dropped = data
                    return
                reply = self._data_reply(rcpts)
                if reply.startswith("250"):
                    with self._lock:
                        self._accepted.append(Accepted(mail_from, list(rcpts), data, time.time()))
                await self._reply(writer, reply)
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                await self._reply(writer, "250 2.0.0 Ok")
            elif verb == "NOOP":
                await self._reply(writer, "250 2.0.0 Ok")
            elif verb == "QUIT":
                await self._reply(writer, "221 2.0.0 Bye")
                return
            else:
                await self._reply(writer, "502 5.5.2 Error: command not recognized")

    def _data_reply(self, rcpts: list[str]) -> str:
        with self._lock:
            for rcpt in rcpts:
                script = self._data_replies.get(rcpt)
                if script:
                    return script.pop(0)
        return "250 2.0.0 Ok: queued"


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    """The message up to the lone dot, dot-stuffing undone."""
    lines: list[bytes] = []
    while (line := await reader.readline()) != b".\r\n":
        if not line:
            raise asyncio.IncompleteReadError(b"".join(lines), None)
        lines.append(line[1:] if line.startswith(b".") else line)
    return b"".join(lines)
