"""The sender's maps keyed by traffic stay bounded: rate buckets, idle SMTP connections (the
least recently used closed with QUIT, never one in use), connection slots and parsed DKIM
keys. Fake SMTP clients and clocks: no socket is opened, no real time is waited for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from services.common.avro.records import MxHost
from services.common.routing import RoutingSettings
from services.sender.config import SmtpSettings
from services.sender.egress import ConnectPath, Egress
from services.sender.keyring import DkimKeyring
from services.sender.shaping import DEFAULT_CLASSES, ProviderClass, Shaper
from services.sender.smtp import SmtpPool, _Conn
from services.sender.tls import TlsPolicy

N = 1_000
MAX = 100
# For work that takes microseconds: generous on a loaded machine, and short of pytest-timeout,
# so a wait that never ends fails with what it waited for.
WAIT_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_refilled_bucket_is_dropped_and_nothing_changes() -> None:
    clock = Clock()
    rated = ProviderClass(name="rated", pattern=r"^mx\.rated\.", messages_per_second=2)
    shaper = Shaper(classes=[rated, *DEFAULT_CLASSES], clock=clock)
    destination = shaper.destination(host="mx.rated.example", address="192.0.2.1")
    assert [shaper.reserve(destination) for _ in range(3)] == [0, 0, 0.5]
    clock.now += 1.49  # 3 tokens short, back to 2 only after 1.5 s: still held
    assert len(shaper._buckets) == 1
    clock.now += 0.01
    assert [shaper.reserve(destination) for _ in range(3)] == [0, 0, 0.5]  # as if new


def test_per_address_buckets_keep_their_bound() -> None:
    # An operator gave the catch-all class a rate: one bucket per MX address.
    other = ProviderClass(name="other", pattern=r".*", messages_per_second=1)
    shaper = Shaper(classes=[other], max_buckets=MAX, clock=Clock())
    for i in range(N):
        destination = shaper.destination(host=f"mx.d{i}.example", address=_address(i))
        assert shaper.reserve(destination) == 0.0
    assert len(shaper._buckets) == MAX


class FakeClient:
    """What SmtpPool uses of aiosmtplib.SMTP; data() may be held open by a test."""

    def __init__(self, address: str, holds: dict[str, asyncio.Event]) -> None:
        self.address = address
        self.holds = holds
        self.is_connected = True
        self.is_ehlo_or_helo_needed = False
        self.transport = None
        self.quit_sent = False
        self.in_use = False
        self.held = False  # waiting in data() for the test to release it

    def supports_extension(self, name: str) -> bool:
        return False

    async def mail(self, sender: str, **_: Any) -> None:
        assert self.is_connected
        self.in_use = True

    async def rcpt(self, recipient: str, **_: Any) -> None:
        assert self.is_connected

    async def data(self, message: bytes) -> SimpleNamespace:
        hold = self.holds.get(self.address)
        if hold is not None:
            self.held = True
            await hold.wait()
            self.held = False
        assert self.is_connected, "closed while in use"
        self.in_use = False
        return SimpleNamespace(code=250, message="2.0.0 Ok")

    async def quit(self) -> None:
        assert not self.in_use, "QUIT sent on a connection in use"
        self.quit_sent = True

    def close(self) -> None:
        assert not self.in_use, "a connection in use was closed"
        self.is_connected = False


class FakePool(SmtpPool):
    def __init__(self, *, max_idle_pools: int = MAX) -> None:
        tls = TlsPolicy(required_domains=frozenset())
        super().__init__(
            settings=SmtpSettings(max_idle_pools=max_idle_pools),
            tls=tls,
            shaper=Shaper(classes=list(DEFAULT_CLASSES), clock=Clock()),
            egress=Egress(routing=RoutingSettings(), tls=tls),
        )
        self.opened: list[FakeClient] = []
        self.holds: dict[str, asyncio.Event] = {}
        self.in_data = 0
        self.most_in_data = 0

    async def _open(self, mx: MxHost, path: ConnectPath) -> _Conn:
        client = FakeClient(mx.address, self.holds)
        self.opened.append(client)
        return _Conn(client)  # type: ignore[arg-type]

    async def _transaction(self, conn: _Conn, *args: Any) -> Any:
        self.in_data += 1
        self.most_in_data = max(self.most_in_data, self.in_data)
        try:
            return await super()._transaction(conn, *args)
        finally:
            self.in_data -= 1


async def _send(pool: SmtpPool, address: str) -> int | None:
    attempt = await pool.send(
        mx=MxHost(host="mx.example.org", address=address),
        mail_from="bounces@acme.example",
        recipient="someone@example.org",
        data=b"Subject: hi\r\n\r\nhello\r\n",
    )
    return attempt.code


def _address(i: int) -> str:
    return f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"


def _held(pool: FakePool) -> int:
    return sum(c.held for c in pool.opened)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Lets the loop run until condition holds: the test waits for the state it needs, not
    for a guessed number of turns, and a state never reached fails instead of hanging."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(f"not {what} after {WAIT_S} s") from None


async def _retired(pool: SmtpPool) -> None:
    """Waits for the closings of evicted idle connections, which run as tasks of their own,
    and raises what any of them raised."""
    if not pool._closing:
        return
    done, pending = await asyncio.wait(set(pool._closing), timeout=WAIT_S)
    assert not pending, f"{len(pending)} closings of evicted connections still running"
    for task in done:
        task.result()


async def test_idle_connections_are_kept_for_at_most_max_idle_pools() -> None:
    pool = FakePool()
    for i in range(N):
        assert await _send(pool, _address(i)) == 250
    await _retired(pool)
    assert len(pool._idle) == MAX
    open_ = [c for c in pool.opened if c.is_connected]
    assert len(open_) == MAX
    assert {c.address for c in open_} == {_address(i) for i in range(N - MAX, N)}
    closed = [c for c in pool.opened if not c.is_connected]
    assert len(closed) == N - MAX and all(c.quit_sent for c in closed)
    assert pool._slots == {}
    await _send(pool, _address(N - 1))  # reused: no new connection
    assert len(pool.opened) == N
    await pool.close()
    assert len(pool._idle) == 0 and not any(c.is_connected for c in pool.opened)


async def test_eviction_never_closes_a_connection_in_use() -> None:
    pool = FakePool(max_idle_pools=2)
    busy = _address(0)
    hold = pool.holds[busy] = asyncio.Event()
    first = [asyncio.create_task(_send(pool, busy)) for _ in range(2)]
    await _until(lambda: _held(pool) == 2, "both first sends held in DATA")
    hold.set()
    assert await asyncio.gather(*first) == [250, 250]
    hold.clear()
    pending = asyncio.create_task(_send(pool, busy))  # takes one of its two idle connections
    await _until(lambda: _held(pool) == 1, "the third send held in DATA")
    (in_use,) = [c for c in pool.opened if c.in_use]
    (idle,) = [c for c in pool.opened if not c.in_use]
    for i in range(1, 50):  # floods the idle pools: busy's is evicted meanwhile
        assert await _send(pool, _address(i)) == 250
    await _retired(pool)
    assert idle.quit_sent and not idle.is_connected  # its idle one was closed with QUIT
    assert in_use.is_connected and not in_use.quit_sent  # the one in use was not
    hold.set()
    assert await pending == 250
    assert len(pool._idle) == 2
    await pool.close()


async def test_slots_of_a_destination_are_dropped_when_no_task_uses_them() -> None:
    slow = ProviderClass(name="slow", pattern=r"^mx\.slow\.", connections=2)
    pool = FakePool()
    pool._shaper = Shaper(classes=[slow, *DEFAULT_CLASSES], clock=Clock())
    hold = pool.holds[_address(7)] = asyncio.Event()
    sends = [
        asyncio.create_task(
            pool.send(
                mx=MxHost(host="mx.slow.example", address=_address(7)),
                mail_from="b@acme.example",
                recipient="r@slow.example",
                data=b"x\r\n",
            )
        )
        for _ in range(10)
    ]

    def all_started() -> bool:
        slots = pool._slots.get("class:slow")
        return _held(pool) == 2 and slots is not None and slots.slots.waiting == 8

    await _until(all_started, "two sends held in DATA and eight waiting for a slot")
    assert list(pool._slots) == ["class:slow"] and pool._slots["class:slow"].users == 10
    hold.set()
    assert {a.code for a in await asyncio.gather(*sends)} == {250}
    assert pool.most_in_data == 2  # the limit held throughout
    assert pool._slots == {}


def _key_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class Specs:
    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return [SimpleNamespace(spec_json=json.dumps(s)) for s in self.specs]


def _spec(domain: str, path: Path) -> dict[str, Any]:
    entry = {"selector": "s1", "algorithm": "ed25519-sha256", "private_key_file": str(path)}
    return {"id": domain.split(".")[0], "sender_domains": [{"domain": domain, "dkim": [entry]}]}


async def test_parsed_keys_are_those_the_latest_specs_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = Specs()
    keyring = DkimKeyring(session=session, refresh_s=0)  # type: ignore[arg-type]
    loads: list[Path] = []
    import services.sender.keyring as keyring_module

    real = keyring_module.load_key

    def counting(path: Path, **kw: Any) -> Any:
        loads.append(path)
        return real(path, **kw)

    monkeypatch.setattr(keyring_module, "load_key", counting)
    for i in range(20):  # tenants come and go, each with its own key file
        session.specs = [_spec(f"t{i}.example", _key_file(tmp_path, f"k{i}.pem"))]
        await keyring.signer()
        assert len(keyring._parsed) == 1
    shared = _key_file(tmp_path, "shared.pem")
    session.specs = [_spec("a.example", shared), _spec("b.example", shared)]
    await keyring.signer()
    await keyring.signer()
    assert loads.count(shared) == 1  # parsed once, kept across refreshes
    assert len(keyring._parsed) == 1
