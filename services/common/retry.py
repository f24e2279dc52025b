"""Bounded retry of transient infrastructure errors (past the bound the error propagates), and
the doubling backoff that the unbounded waits of the runner and the sender share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.errors import TransientError
from services.common.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


async def with_retries(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    first_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
) -> T:
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TransientError as exc:
            if attempt == attempts:
                raise
            log.warning("transient_error_retrying", what=what, attempt=attempt, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")


class Backoff:
    """Delays that double from `first_s` up to `max_s`; `reset` after a success."""

    def __init__(self, *, first_s: float, max_s: float) -> None:
        self._first = first_s
        self._max = max_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay

    def reset(self) -> None:
        self._next = self._first
