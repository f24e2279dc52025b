"""AsyncProducer: outputs queued in order, each awaited until its delivery report, and the
reports of one poll handed to the event loop together (a fake librdkafka producer)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError

import services.common.kafka.producer as producer_module
from services.common.errors import DeliveryFailed
from services.common.handoff import LoopHandoff
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Output


class FakeProducer:
    """Queues produce() calls; poll() reports every queued one, failing the keys in `fail`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[bytes | None] = []
        self.pending: list[tuple[bytes | None, Any]] = []
        self.fail: set[bytes] = set()
        self.lock = threading.Lock()
        self.release = threading.Event()  # poll() reports nothing until it is set
        self.release.set()

    def produce(self, topic: str, *, value: bytes, key: bytes | None, headers: Any,
                on_delivery: Any) -> None:  # fmt: skip
        with self.lock:
            self.produced.append(key)
            self.pending.append((key, on_delivery))

    def poll(self, timeout: float) -> int:
        if not self.release.wait(min(timeout, 0.01)):
            return 0
        with self.lock:
            pending, self.pending = self.pending, []
        for key, report in pending:
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if key in self.fail else None
            report(err, None)
        if not pending:
            threading.Event().wait(min(timeout, 0.01))
        return len(pending)

    def purge(self, *, in_queue: bool, in_flight: bool, blocking: bool) -> None:
        self.purged = (in_queue, in_flight)

    def __len__(self) -> int:
        with self.lock:
            return len(self.pending)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def make(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    monkeypatch.setattr(producer_module, "Producer", make)
    return made


def _out(key: bytes) -> Output:
    return Output(topic="t", key=key, value=b"v")


async def test_outputs_go_out_in_order_and_resolve_on_their_reports(
    fake: list[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[int] = []
    real = LoopHandoff._drain

    def counting(self: LoopHandoff) -> None:
        handed.append(len(self._posted))
        real(self)

    monkeypatch.setattr(LoopHandoff, "_drain", counting)
    producer = AsyncProducer(config={})
    fake[0].release.clear()
    producer.start()
    try:
        sending = asyncio.create_task(producer.produce_all([_out(b"a"), _out(b"b"), _out(b"c")]))
        while len(fake[0].produced) < 3:
            await asyncio.sleep(0.01)
        assert not sending.done()  # nothing acknowledged yet
        fake[0].release.set()
        await asyncio.wait_for(sending, 5)
        assert fake[0].produced == [b"a", b"b", b"c"]
        assert handed == [3]  # the three reports of one poll, handed to the loop together
        await asyncio.wait_for(producer.produce(_out(b"d")), 5)
    finally:
        await producer.close()


async def test_a_failed_report_fails_the_wait(fake: list[FakeProducer]) -> None:
    producer = AsyncProducer(config={})
    producer.start()
    try:
        fake[0].fail.add(b"bad")
        with pytest.raises(DeliveryFailed, match="_MSG_TIMED_OUT"):
            await asyncio.wait_for(producer.produce_all([_out(b"ok"), _out(b"bad")]), 5)
    finally:
        await producer.close()


async def test_a_delivery_timeout_replaces_the_client_once_and_the_next_outputs_use_the_new_one(
    fake: list[FakeProducer],
) -> None:
    producer = AsyncProducer(config={})
    producer.start()
    try:
        fake[0].fail.add(b"stuck")
        with pytest.raises(DeliveryFailed, match="_MSG_TIMED_OUT"):
            await asyncio.wait_for(producer.produce(_out(b"stuck")), 5)
        for _ in range(100):  # the replacement runs on the loop just after the report
            if len(fake) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(fake) == 2 and fake[0].purged == (True, False)
        await asyncio.wait_for(producer.produce(_out(b"next")), 5)
        assert fake[1].produced == [b"next"] and b"next" not in fake[0].produced
        # Another timeout within the minute keeps the new client.
        fake[1].fail.add(b"again")
        with pytest.raises(DeliveryFailed):
            await asyncio.wait_for(producer.produce(_out(b"again")), 5)
        await asyncio.sleep(0.05)
        assert len(fake) == 2
    finally:
        await producer.close()


async def test_urgent_outputs_have_a_client_of_their_own_replaced_on_its_own(
    fake: list[FakeProducer],
) -> None:
    producer = AsyncProducer(config={"linger.ms": 2}, urgent_config={"linger.ms": 0})
    producer.start()
    try:
        bulk, urgent = fake
        await asyncio.wait_for(producer.produce_all([_out(b"b1"), _out(b"b2")]), 5)
        await asyncio.wait_for(producer.produce_all([_out(b"u1")], urgent=True), 5)
        assert bulk.produced == [b"b1", b"b2"] and urgent.produced == [b"u1"]
        # A timeout on the urgent client replaces it, with the urgent configuration...
        urgent.fail.add(b"stuck")
        with pytest.raises(DeliveryFailed, match="_MSG_TIMED_OUT"):
            await asyncio.wait_for(producer.produce(_out(b"stuck"), urgent=True), 5)
        for _ in range(100):
            if len(fake) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(fake) == 3 and urgent.purged == (True, False)
        await asyncio.wait_for(producer.produce(_out(b"u2"), urgent=True), 5)
        await asyncio.wait_for(producer.produce(_out(b"b3")), 5)
        # ...and leaves the other client alone.
        assert fake[2].config == {"linger.ms": 0}
        assert fake[2].produced == [b"u2"] and bulk.produced == [b"b1", b"b2", b"b3"]
    finally:
        await producer.close()
