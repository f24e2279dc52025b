"""Results settled on another thread (a client library's I/O thread), handed to the event
loop in one call however many arrive before the loop gets to it."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any


class LoopHandoff:
    """`post` from any thread; the loop runs what was posted, in order, in one callback.

    A wake-up of the loop per result (call_soon_threadsafe writes to its self-pipe, and the
    loop then runs one callback) cost about as much as settling the result itself: under
    load the Kafka producer's delivery reports and the Cassandra driver's responses arrive
    in bursts, and one wake-up now serves a burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._posted: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        # True from the scheduling of a drain until that drain starts. A post that finds it
        # True is taken by that drain; one that finds it False schedules another (at worst a
        # drain finds nothing). Each step is atomic under the GIL, so no lock is needed.
        self._scheduled = False

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        self._posted.append((fn, args))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nothing waits for these any more
                self._scheduled = False

    def _drain(self) -> None:
        self._scheduled = False
        posted = self._posted
        while posted:
            fn, args = posted.popleft()
            try:
                fn(*args)
            except Exception as exc:  # one bad callback must not strand the rest
                self.loop.call_exception_handler(
                    {"message": "handed-off callback failed", "exception": exc}
                )
