"""Requests made by many records at once, sent to Cassandra as one.

Under load the runner begins the records of a fetch together, and one burst of responses
(services/common/handoff.py) wakes many of them in the same turn of the event loop: they
then ask for the same kind of thing (the suppressions of one tenant, the ledger rows of
their tasks, their timeline rows) one request each. Each request costs the client about as
much whatever it holds, and costs Cassandra's request handling about as much again; a
`Coalescer` gathers the calls of one turn of the loop and runs them as one request per
group, up to a bound. Idle, a call waits one turn of the loop (microseconds) for company.

A failure of the merged request is every caller's, except one that is not an outage
(TransientError): then each caller's part runs again on its own, so one bad request fails
alone and never its neighbours (a poison record must not take the mail around it down)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from services.common.errors import TransientError

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
R = TypeVar("R")

# One merged request's callers' parts, to its results in the same order.
Run = Callable[[K, Sequence[A]], Awaitable[Sequence[R]]]


class Coalescer(Generic[K, A, R]):
    """`await coalescer(key, part)`: the result for part, from one request per key (and per
    `max_parts` parts, or per `max_weight` of their `weight`) with the other calls of this
    turn of the loop."""

    def __init__(
        self,
        run: Run[K, A, R],
        *,
        max_parts: int,
        max_weight: int | None = None,
        weight: Callable[[A], int] | None = None,
    ) -> None:
        self._run = run
        self._max_parts = max_parts
        self._max_weight = max_weight
        self._weight = weight
        self._pending: dict[K, list[tuple[A, asyncio.Future[R]]]] = {}
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K, part: A) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.setdefault(key, []).append((part, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for key, calls in pending.items():
            for group in self._groups(calls):
                task = asyncio.get_running_loop().create_task(self._settle(key, group))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    def _groups(
        self, calls: list[tuple[A, asyncio.Future[R]]]
    ) -> list[list[tuple[A, asyncio.Future[R]]]]:
        groups: list[list[tuple[A, asyncio.Future[R]]]] = []
        group: list[tuple[A, asyncio.Future[R]]] = []
        weight = 0
        for call in calls:
            w = self._weight(call[0]) if self._weight is not None else 0
            over = self._max_weight is not None and weight + w > self._max_weight
            if group and (len(group) >= self._max_parts or over):
                groups.append(group)
                group, weight = [], 0
            group.append(call)
            weight += w
        if group:
            groups.append(group)
        return groups

    async def _settle(self, key: K, group: list[tuple[A, asyncio.Future[R]]]) -> None:
        live = [(part, future) for part, future in group if not future.done()]
        if not live:
            return  # every caller was cancelled (its partition revoked, say)
        try:
            results = await self._run(key, [part for part, _ in live])
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except TransientError as exc:
            for _, future in live:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(live) == 1:
                _fail(live[0][1], exc)
                return
            # Not an outage: find whose part it is by running each alone.
            await asyncio.gather(*(self._settle(key, [call]) for call in live))
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
