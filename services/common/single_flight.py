"""Calls for one key while one is under way wait for that one instead of starting their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """E.g. a burst of mail to one domain waits for one DNS query or one policy fetch, rather
    than sending thousands that time out together. A failure reaches every waiter, and the
    next call after it starts afresh."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}

    def under_way(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, start: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(start())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # Shielded: one waiter cancelled does not cancel the call the others wait for.
        return await asyncio.shield(flight)

    def _landed(self, key: K, flight: asyncio.Future[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
