"""A lane's byte budget: while the records it has in flight add up to max_in_flight_bytes it
takes no more, whatever its count window says; with nothing in flight it always takes what
is fetched, so a record larger than the whole budget is never stuck."""

import asyncio
from typing import Any

from services.common.config import KafkaSettings
from services.common.kafka.runner import Lane, LaneRunner

TOPIC = "deliver"


class FakeMessage:
    """The accessors of a confluent_kafka Message that the runner reads."""

    def __init__(self, offset: int, size: int) -> None:
        self._offset = offset
        self._value = b"x" * size

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def headers(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return f"m-{self._offset}".encode()

    def value(self) -> bytes:
        return self._value


class Gate:
    """A handler that holds every record until released."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started = 0

    async def __call__(self, _inbound: Any) -> list[Any]:
        self.started += 1
        await self.open.wait()
        return []


def _runner(handler: Gate, budget: int | None, window: int = 100) -> LaneRunner:
    lane = Lane(
        name="critical",
        group_id="critical",
        topics=[TOPIC],
        handler=handler,
        dlq_topic="dlq",
        max_in_flight=window,
        max_in_flight_bytes=budget,
    )
    runner = LaneRunner(
        lane=lane,
        settings=KafkaSettings(consume_batch=200),
        producer=None,  # type: ignore[arg-type]  # the handler has no outputs to produce
        stop=asyncio.Event(),
    )
    runner._on_assign(None, [_Partition()])  # type: ignore[arg-type, list-item]
    return runner


class _Partition:
    topic = TOPIC
    partition = 0


def _messages(first: int, count: int, size: int) -> list[Any]:
    return [FakeMessage(first + i, size) for i in range(count)]


async def _settle(runner: LaneRunner) -> None:
    await asyncio.wait(set(runner._tasks))
    await asyncio.sleep(0)  # the done callbacks


async def test_over_the_budget_takes_nothing_until_records_finish() -> None:
    gate = Gate()
    runner = _runner(gate, budget=10_000)
    assert runner._free() == 100
    await runner._dispatch(_messages(0, 4, 3_000))  # 12,000 bytes: one fetch passes it
    await asyncio.sleep(0)
    assert gate.started == 4
    assert runner._free() == 0
    gate.open.set()
    await _settle(runner)
    assert runner._bytes_in_flight == 0
    assert runner._free() == 100


async def test_under_the_budget_the_count_window_rules() -> None:
    gate = Gate()
    runner = _runner(gate, budget=10_000, window=5)
    await runner._dispatch(_messages(0, 3, 3_000))  # 9,000 bytes: under
    assert runner._free() == 2
    gate.open.set()
    await _settle(runner)


async def test_a_record_larger_than_the_budget_still_goes_in_alone() -> None:
    gate = Gate()
    runner = _runner(gate, budget=1_000)
    assert runner._free() > 0  # nothing in flight: room whatever the size to come
    await runner._dispatch(_messages(0, 1, 5_000))
    await asyncio.sleep(0)
    assert gate.started == 1
    assert runner._free() == 0  # and nothing beside it
    gate.open.set()
    await _settle(runner)
    assert runner._free() == 100


async def test_no_budget_counts_only_records() -> None:
    gate = Gate()
    runner = _runner(gate, budget=None, window=5)
    await runner._dispatch(_messages(0, 3, 10_000_000))
    assert runner._free() == 2
    gate.open.set()
    await _settle(runner)


async def test_fenced_records_give_their_bytes_back() -> None:
    gate = Gate()
    runner = _runner(gate, budget=10_000)
    await runner._dispatch(_messages(0, 2, 6_000))
    runner._drop([(TOPIC, 0)])  # revoked before they began: both are abandoned
    await _settle(runner)
    assert gate.started == 0
    assert runner._bytes_in_flight == 0
    assert runner._free() == 100


async def test_cancelled_records_give_their_bytes_back() -> None:
    gate = Gate()
    runner = _runner(gate, budget=10_000)
    await runner._dispatch(_messages(0, 2, 6_000))
    await asyncio.sleep(0)
    for task in runner._tasks:
        task.cancel()  # as the shutdown does past its drain timeout
    await asyncio.wait(set(runner._tasks))
    await asyncio.sleep(0)
    assert runner._bytes_in_flight == 0
