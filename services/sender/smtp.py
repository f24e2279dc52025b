"""SMTP delivery with aiosmtplib over a small pool of reused connections per MX host."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiosmtplib

from services.common.avro.records import MxHost
from services.sender.config import SmtpSettings
from services.sender.slots import PrioritySlots


@dataclass(frozen=True)
class Attempt:
    """What one MX host said. code None: no reply at all (connection_error says why)."""

    mx_host: str
    code: int | None
    text: str
    tls_version: str | None = None
    connection_error: str | None = None


class _Conn:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0


class SmtpPool:
    def __init__(self, *, settings: SmtpSettings) -> None:
        self._settings = settings
        self._idle: dict[str, list[_Conn]] = {}
        self._slots: dict[str, PrioritySlots] = {}

    async def send(
        self, *, mx: MxHost, mail_from: str, recipient: str, data: bytes, rank: int = 0
    ) -> Attempt:
        """rank orders waiters for a connection slot: 0 (critical) first."""
        # Connections are pooled per address; events name the MX host.
        host, address = mx.host, mx.address
        slots = self._slots.setdefault(
            address, PrioritySlots(slots=self._settings.connections_per_host)
        )
        async with slots.slot(rank):
            try:
                conn = await self._checkout(address)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Attempt(host, None, str(exc)[:500], connection_error="connection")
            try:
                attempt = await self._transaction(conn, host, mail_from, recipient, data)
            except (
                aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError,
                OSError,
                TimeoutError,
            ) as exc:
                await self._discard(conn)
                return Attempt(host, None, str(exc)[:500], connection_error="connection_lost")
            await self._checkin(
                address, conn, reusable=attempt.code is not None and attempt.code < 421
            )
            return attempt

    async def _transaction(
        self, conn: _Conn, host: str, mail_from: str, recipient: str, data: bytes
    ) -> Attempt:
        client = conn.client
        tls = _tls_version(client)
        try:
            await client.mail(mail_from)
            await client.rcpt(recipient)
            response = await client.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
            return Attempt(host, exc.code, exc.message, tls)
        conn.sent += 1
        return Attempt(host, response.code, response.message, tls)

    async def _checkout(self, address: str) -> _Conn:
        idle = self._idle.setdefault(address, [])
        while idle:
            conn = idle.pop()
            if conn.client.is_connected:
                return conn
        client = aiosmtplib.SMTP(
            hostname=address,
            port=self._settings.port,
            local_hostname=self._settings.helo_name,
            timeout=self._settings.command_timeout_s,
            start_tls=False,
        )
        await asyncio.wait_for(client.connect(), self._settings.connect_timeout_s)
        return _Conn(client)

    async def _checkin(self, address: str, conn: _Conn, *, reusable: bool) -> None:
        if (
            reusable
            and conn.sent < self._settings.messages_per_connection
            and conn.client.is_connected
        ):
            self._idle.setdefault(address, []).append(conn)
        else:
            await self._discard(conn)

    async def _discard(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            if conn.client.is_connected:
                await conn.client.quit()
        conn.client.close()

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                await self._discard(conn)
        self._idle.clear()


def _tls_version(client: aiosmtplib.SMTP) -> str | None:
    transport = client.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None
