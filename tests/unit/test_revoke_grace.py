"""A revoke (or SIGTERM) whose drain time runs out: records that have not begun their side
effect are fenced, and one that has (lease.claim: an SMTP transaction under way) is waited
for, up to the started-send grace, so its outcome is committed before the partition moves."""

import asyncio
import time
from typing import Any

import pytest

from services.common.config import KafkaSettings
from services.common.errors import Fenced
from services.common.kafka import lease
from services.common.kafka.runner import Lane, LaneRunner
from tests.unit.test_runner_bytes import TOPIC, _messages, _Partition


class Sends:
    """A handler whose record 0 claims its lease at once and then takes `send_s` (a slow MX
    reply); the others wait `queue_s` for a connection slot before claiming theirs."""

    def __init__(self, send_s: float, queue_s: float = 0.3) -> None:
        self.send_s = send_s
        self.queue_s = queue_s
        self.sent: list[int] = []
        self.fenced: list[int] = []

    async def __call__(self, inbound: Any) -> list[Any]:
        if inbound.offset > 0:
            await asyncio.sleep(self.queue_s)
        try:
            lease.claim()
        except Fenced:
            self.fenced.append(inbound.offset)
            raise
        await asyncio.sleep(self.send_s)
        self.sent.append(inbound.offset)
        return []


def _runner(handler: Sends, grace_s: float) -> LaneRunner:
    lane = Lane(name="bulk", group_id="bulk", topics=[TOPIC], handler=handler, dlq_topic="dlq")
    runner = LaneRunner(
        lane=lane,
        settings=KafkaSettings(started_send_grace_s=grace_s),
        producer=None,  # type: ignore[arg-type]  # the handler has no outputs to produce
        stop=asyncio.Event(),
    )
    runner._on_assign(None, [_Partition()])  # type: ignore[arg-type, list-item]
    return runner


async def test_a_started_send_is_waited_for_and_a_queued_one_is_fenced() -> None:
    sends = Sends(send_s=0.6)
    runner = _runner(sends, grace_s=5.0)
    await runner._dispatch(_messages(0, 3, 100))
    await asyncio.sleep(0.05)
    tasks = list(runner._tasks)
    left = await runner._finish(tasks, 0.1, [(TOPIC, 0)])
    assert left == 3
    assert all(t.done() for t in tasks)  # the grace waited for the started send
    assert sends.sent == [0]
    assert sorted(sends.fenced) == [1, 2]  # they reached their claim after the lease ended
    assert runner._tracker.committable() == {(TOPIC, 0): 1}  # record 0 is done: committable


async def test_the_grace_is_bounded() -> None:
    sends = Sends(send_s=30.0)
    runner = _runner(sends, grace_s=0.3)
    await runner._dispatch(_messages(0, 1, 100))
    await asyncio.sleep(0.05)
    began = time.monotonic()
    assert await runner._finish(list(runner._tasks), 0.1, [(TOPIC, 0)]) == 1
    assert time.monotonic() - began == pytest.approx(0.4, abs=0.2)
    (task,) = runner._tasks
    assert not task.done()  # given up on (logged as a possible duplicate)
    task.cancel()


async def test_without_a_claim_nothing_waits_past_the_drain_time() -> None:
    sends = Sends(send_s=0.0, queue_s=30.0)  # record 1 would wait for a slot that long
    runner = _runner(sends, grace_s=30.0)
    await runner._dispatch(_messages(1, 1, 100))
    began = time.monotonic()
    assert await runner._finish(list(runner._tasks), 0.1, [(TOPIC, 0)]) == 1
    assert time.monotonic() - began < 1.0
    for task in runner._tasks:
        task.cancel()
