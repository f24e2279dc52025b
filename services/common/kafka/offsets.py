"""Which offset of each partition is safe to commit: the lowest still in flight."""

from __future__ import annotations

import threading

TopicPartitionKey = tuple[str, int]


class OffsetTracker:
    """Tracks begun and finished offsets per partition.

    A partition's committable offset is the lowest offset still in flight, or one past the
    highest finished offset when nothing is in flight. Messages finish in any order; the
    commit never passes a message whose outputs are not all acknowledged. Thread-safe,
    because rebalance callbacks run on the consumer's thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPartitionKey, set[int]] = {}
        self._next: dict[TopicPartitionKey, int] = {}

    def begin(self, tp: TopicPartitionKey, offset: int) -> None:
        with self._lock:
            self._pending.setdefault(tp, set()).add(offset)

    def done(self, tp: TopicPartitionKey, offset: int) -> None:
        with self._lock:
            pending = self._pending.get(tp)
            if pending is None or offset not in pending:
                return  # the partition was revoked meanwhile; its new owner redoes it
            pending.discard(offset)
            self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def committable(
        self, tps: list[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        with self._lock:
            keys = tps if tps is not None else list(self._next)
            out: dict[TopicPartitionKey, int] = {}
            for tp in keys:
                if tp not in self._next:
                    continue
                pending = self._pending.get(tp)
                out[tp] = min(pending) if pending else self._next[tp]
            return out

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        with self._lock:
            for tp in tps:
                self._pending.pop(tp, None)
                self._next.pop(tp, None)
