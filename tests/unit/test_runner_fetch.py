"""The runner's fetch returns as soon as one message is there: librdkafka's batch consume
waits out its whole timeout unless the batch fills (measured on the local broker: 103 ms
p50 for a lone record against 3.6 ms), which an idle pipeline paid at every hop."""

from typing import Any

from services.common.kafka.runner import _fetch


class QueueConsumer:
    """Stands in for librdkafka's consume(num_messages, timeout): takes up to n queued
    messages; when nothing is queued and the timeout is not 0, one arrives during the wait."""

    def __init__(self, queued: list[str], arriving: list[str]) -> None:
        self.queued = queued
        self.arriving = arriving
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append((n, timeout))
        if not self.queued and timeout > 0 and self.arriving:
            self.queued.append(self.arriving.pop(0))
        taken, self.queued = self.queued[:n], self.queued[n:]
        return taken


def test_takes_what_is_queued_without_waiting() -> None:
    consumer = QueueConsumer(["a", "b", "c"], [])
    assert _fetch(consumer, 2) == ["a", "b"]  # type: ignore[arg-type]
    assert consumer.calls == [(2, 0)]


def test_waits_for_one_then_tops_up_without_waiting_for_a_full_batch() -> None:
    consumer = QueueConsumer([], ["a"])
    consumer.arriving.append("b")
    assert _fetch(consumer, 200, timeout_s=0.1) == ["a"]  # type: ignore[arg-type]
    assert consumer.calls == [(200, 0), (1, 0.1), (199, 0)]


def test_nothing_arrives() -> None:
    consumer = QueueConsumer([], [])
    assert _fetch(consumer, 50, timeout_s=0.1) == []  # type: ignore[arg-type]
    assert consumer.calls == [(50, 0), (1, 0.1)]


def test_a_batch_of_one_is_not_topped_up() -> None:
    consumer = QueueConsumer([], ["a"])
    assert _fetch(consumer, 1) == ["a"]  # type: ignore[arg-type]
    assert consumer.calls == [(1, 0), (1, 0.1)]
