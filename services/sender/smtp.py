"""SMTP delivery with aiosmtplib over a small pool of reused connections per MX address."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosmtplib
import idna

from services.common.avro.records import MxHost
from services.common.bounded import MISSING, BoundedMap
from services.common.errors import Fenced
from services.common.kafka import lease
from services.common.metrics import (
    SMTP_CONNECTIONS,
    SMTP_RATE_LIMITED,
    SMTP_RATE_WAIT_SECONDS,
    SMTP_SLOT_WAITERS,
)
from services.sender.config import SmtpSettings
from services.sender.egress import ConnectPath, Egress
from services.sender.shaping import Destination, Shaper
from services.sender.slots import PrioritySlots
from services.sender.tls import TlsPolicy

_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError)


@dataclass(frozen=True)
class Attempt:
    """What one MX host said. code None: no reply at all (connection_error says why); a code
    with connection_error: the host refused before any transaction (a 421 greeting), so the
    next MX may still be tried. stage: the command a failing reply answered."""

    mx_host: str
    code: int | None
    text: str
    tls_version: str | None = None
    connection_error: str | None = None
    stage: str | None = None  # "mail", "rcpt" or "data"
    provider: str = ""  # the destination's provider class (shaping), for metrics


class TlsUnavailable(Exception):
    """TLS is required for this destination and could not be had with a valid certificate."""


class RelayAuthFailed(Exception):
    """A smarthost refused our credentials: a configuration fault, so the mail waits."""


class _Conn:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0
        self.provider = ""  # the provider class it was opened for, for the gauges


class _Slots:
    def __init__(self, slots: PrioritySlots) -> None:
        self.slots = slots
        self.users = 0  # tasks holding or waiting for one of its slots


_PoolKey = tuple[str, int, str, str]  # MX address, port, verified host name, route


class SmtpPool:
    def __init__(
        self, *, settings: SmtpSettings, tls: TlsPolicy, shaper: Shaper, egress: Egress
    ) -> None:
        self._settings = settings
        self._tls = tls
        self._shaper = shaper
        self._egress = egress
        # Pooled per (address, port, verified name, route): a connection made without verified
        # TLS is never reused where TLS is required, nor one verified for another MX name, nor
        # one bound to another egress pool or authenticated to another relay. Only keys with
        # idle connections are held, at most max_idle_pools: checking in to one more closes
        # the idle connections of the least recently used (never one in use: a connection in
        # use is in no list).
        self._idle: BoundedMap[_PoolKey, list[_Conn]] = BoundedMap(
            max_entries=settings.max_idle_pools
        )
        # Closings of evicted idle connections under way.
        self._closing: set[asyncio.Task[None]] = set()
        # Slots of the destinations being sent to or waited for now; a destination no task
        # holds or waits for is dropped (all its slots free: the same as a new one), so this
        # is bounded by the sends in flight.
        self._slots: dict[str, _Slots] = {}

    async def send(
        self,
        *,
        mx: MxHost,
        mail_from: str,
        recipient: str,
        data: bytes,
        rank: int = 0,
        path: ConnectPath = ConnectPath(),  # noqa: B008 (frozen, so one shared default is safe)
    ) -> Attempt:
        """rank orders waiters for a connection slot: 0 (critical) first."""
        destination = self._shaper.destination(host=mx.host, address=mx.address)
        attempt = await self._send(destination, mx, mail_from, recipient, data, rank, path)
        return dataclasses.replace(attempt, provider=destination.provider.name)

    async def _send(
        self,
        destination: Destination,
        mx: MxHost,
        mail_from: str,
        recipient: str,
        data: bytes,
        rank: int,
        path: ConnectPath,
    ) -> Attempt:
        key = self._pool_key(mx, path)
        provider = destination.provider.name
        async with self._slot(destination, rank):
            # The rate token is taken once a connection slot is ours: slots go to the most
            # urgent waiter first, so the tokens do too.
            wait = self._shaper.reserve(destination)
            if wait > self._settings.max_rate_wait_s:
                self._shaper.give_back(destination)
                SMTP_RATE_LIMITED.labels(provider).inc()
                return Attempt(
                    mx.host,
                    None,
                    f"{provider} rate limit",
                    connection_error="rate_limited",
                )
            SMTP_RATE_WAIT_SECONDS.labels(provider).observe(max(wait, 0.0))
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                # The waits are over: still ours? Past this, a revoke lets the send finish.
                lease.claim()
            except Fenced:
                self._shaper.give_back(destination)
                raise
            try:
                conn = await self._checkout(mx, path, provider)
            except TlsUnavailable as exc:
                return Attempt(mx.host, None, str(exc)[:500], connection_error="tls")
            except RelayAuthFailed as exc:
                return Attempt(mx.host, None, str(exc)[:500], connection_error="authentication")
            except aiosmtplib.SMTPResponseException as exc:  # a 421 or 554 greeting, a bad EHLO
                return Attempt(mx.host, exc.code, exc.message[:500], connection_error="connection")
            except (aiosmtplib.SMTPException, *_LOST) as exc:
                return Attempt(mx.host, None, str(exc)[:500], connection_error="connection")
            try:
                attempt = await self._transaction(conn, mx.host, mail_from, recipient, data)
            except _LOST as exc:
                await self._discard(conn)
                return Attempt(mx.host, None, str(exc)[:500], connection_error="connection_lost")
            reusable = attempt.code is not None and attempt.code < 421
            limit = destination.provider.messages_per_connection
            await self._checkin(key, conn, reusable=reusable and conn.sent < limit)
            return attempt

    @contextlib.asynccontextmanager
    async def _slot(self, destination: Destination, rank: int) -> AsyncIterator[None]:
        """One of the destination's connection slots, counted while waited for."""
        key = destination.key
        held = self._slots.get(key)
        if held is None:
            held = self._slots[key] = _Slots(PrioritySlots(slots=destination.provider.connections))
        held.users += 1
        try:
            waiters = SMTP_SLOT_WAITERS.labels(destination.provider.name)
            waiters.inc()
            try:
                await held.slots.acquire(rank)
            finally:
                waiters.dec()
            try:
                yield
            finally:
                held.slots.release()
        finally:
            held.users -= 1
            if held.users == 0:
                del self._slots[key]

    async def _transaction(
        self, conn: _Conn, host: str, mail_from: str, recipient: str, data: bytes
    ) -> Attempt:
        client = conn.client
        tls = _tls_version(client)
        mail_from, recipient = _envelope(mail_from), _envelope(recipient)
        # RFC 6531: a non-ASCII address travels only where the server offers SMTPUTF8.
        utf8 = not (mail_from.isascii() and recipient.isascii() and data.isascii())
        options, encoding = (["SMTPUTF8"], "utf-8") if utf8 else ([], "ascii")
        stage = "mail"
        try:
            if utf8:
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()
                if not client.supports_extension("smtputf8"):
                    return Attempt(
                        host,
                        None,
                        f"{host} does not offer SMTPUTF8, which this address needs",
                        tls,
                        connection_error="smtputf8_unsupported",
                    )
            await client.mail(mail_from, options=options, encoding=encoding)
            stage = "rcpt"
            await client.rcpt(recipient, encoding=encoding)
            stage = "data"
            response = await client.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
            return Attempt(host, exc.code, exc.message, tls, stage=stage)
        conn.sent += 1
        return Attempt(host, response.code, response.message, tls)

    async def _checkout(self, mx: MxHost, path: ConnectPath, provider: str) -> _Conn:
        key = self._pool_key(mx, path)
        idle = self._idle.get(key)
        while idle is not MISSING and idle:
            conn = idle.pop()
            if not idle:
                self._idle.pop(key)
            SMTP_CONNECTIONS.labels(conn.provider, "idle").dec()
            if conn.client.is_connected:
                SMTP_CONNECTIONS.labels(conn.provider, "busy").inc()
                return conn
            conn.client.close()
        conn = await self._open(mx, path)
        conn.provider = provider
        SMTP_CONNECTIONS.labels(provider, "busy").inc()
        return conn

    async def _open(self, mx: MxHost, path: ConnectPath) -> _Conn:
        if path.tls == "required":
            conn = await self._connect(mx, path, context=self._tls.verifying_context)
        elif path.tls == "none":
            conn = await self._connect(mx, path, context=None)
        else:
            try:
                conn = await self._connect(mx, path, context=self._tls.opportunistic_context)
            except TlsUnavailable:
                # The handshake failed: opportunistic TLS falls back to plain text.
                conn = await self._connect(mx, path, context=None)
        if path.username is not None:
            await self._login(conn, mx, path)
        return conn

    async def _login(self, conn: _Conn, mx: MxHost, path: ConnectPath) -> None:
        assert path.username is not None
        try:
            await conn.client.login(path.username, path.password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            conn.client.close()
            raise RelayAuthFailed(f"{mx.host} refused the login: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPException as exc:
            conn.client.close()
            raise RelayAuthFailed(f"no login with {mx.host}: {exc}") from exc

    async def _connect(
        self, mx: MxHost, path: ConnectPath, *, context: ssl.SSLContext | None
    ) -> _Conn:
        """context None: plain text. Otherwise STARTTLS when offered; with a verifying
        context it must be offered and succeed (TlsUnavailable if not)."""
        source = self._egress.source_address(path)
        client = aiosmtplib.SMTP(
            hostname=mx.address,
            port=mx.port or self._settings.port,
            local_hostname=self._settings.helo_name,
            timeout=self._settings.command_timeout_s,
            start_tls=False,
            source_address=(source, 0) if source else None,
        )
        await asyncio.wait_for(client.connect(), self._settings.connect_timeout_s)
        if context is None:
            return _Conn(client)
        verifying = context.verify_mode != ssl.CERT_NONE
        await client.ehlo()
        if not client.supports_extension("starttls"):
            if verifying:
                client.close()
                raise TlsUnavailable(f"{mx.host} does not offer STARTTLS")
            return _Conn(client)
        try:
            await client.starttls(server_hostname=mx.host, tls_context=context)
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise TlsUnavailable(f"STARTTLS with {mx.host} failed: {exc}") from exc
        return _Conn(client)

    def _pool_key(self, mx: MxHost, path: ConnectPath) -> _PoolKey:
        verified = mx.host.lower() if path.tls == "required" else ""
        return (mx.address, mx.port or self._settings.port, verified, path.route)

    async def _checkin(self, key: _PoolKey, conn: _Conn, *, reusable: bool) -> None:
        if not (reusable and conn.client.is_connected):
            await self._discard(conn)
            return
        SMTP_CONNECTIONS.labels(conn.provider, "busy").dec()
        SMTP_CONNECTIONS.labels(conn.provider, "idle").inc()
        idle = self._idle.get(key)
        if idle is not MISSING:
            idle.append(conn)
            return
        for _, evicted in self._idle.put(key, [conn]):
            self._retire(evicted)

    def _retire(self, conns: list[_Conn]) -> None:
        """Closes evicted idle connections (out of the map: no task can check them out) off
        the path of the send that evicted them, which a QUIT to a slow host must not hold."""
        task = asyncio.create_task(self._discard_all(conns, state="idle"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _discard_all(self, conns: list[_Conn], *, state: str) -> None:
        for conn in conns:
            await self._discard(conn, state=state)

    async def _discard(self, conn: _Conn, *, state: str = "busy") -> None:
        SMTP_CONNECTIONS.labels(conn.provider, state).dec()
        with contextlib.suppress(Exception):
            if conn.client.is_connected:
                await conn.client.quit()
        conn.client.close()

    async def close(self) -> None:
        for conns in self._idle.drain():
            await self._discard_all(conns, state="idle")
        await asyncio.gather(*self._closing)


def _envelope(address: str) -> str:
    """An internationalized domain after an ASCII local part goes as its A-label, so only a
    non-ASCII local part needs SMTPUTF8."""
    local, _, domain = address.rpartition("@")
    if address.isascii() or not local.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain).decode('ascii')}"
    except idna.IDNAError:
        return address


def _tls_version(client: aiosmtplib.SMTP) -> str | None:
    transport = client.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None
