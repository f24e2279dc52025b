"""Coalescer: the calls of one turn of the event loop, run as one request per key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.common.cassandra.coalesce import Coalescer
from services.common.errors import TransientError


class Backend:
    """Doubles each part; refuses a part of 'bad', or everything while `down`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[str]]] = []
        self.down = False

    async def run(self, key: str, parts: Sequence[str]) -> list[str]:
        self.requests.append((key, list(parts)))
        await asyncio.sleep(0)
        if self.down:
            raise TransientError("cassandra down")
        if "bad" in parts:
            raise ValueError("refused")
        return [p * 2 for p in parts]


async def test_calls_of_one_turn_are_one_request_per_key() -> None:
    backend = Backend()
    coalesce: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=10)
    results = await asyncio.gather(
        coalesce("acme", "a"), coalesce("acme", "b"), coalesce("other", "c"), coalesce("acme", "d")
    )
    assert results == ["aa", "bb", "cc", "dd"]
    assert sorted(backend.requests) == [("acme", ["a", "b", "d"]), ("other", ["c"])]


async def test_a_call_alone_is_not_held_back() -> None:
    backend = Backend()
    coalesce: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=10)
    assert await asyncio.wait_for(coalesce("acme", "a"), 1) == "aa"
    assert await coalesce("acme", "b") == "bb"
    assert backend.requests == [("acme", ["a"]), ("acme", ["b"])]


async def test_groups_are_bounded_by_parts_and_by_weight() -> None:
    backend = Backend()
    by_parts: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=2)
    await asyncio.gather(*(by_parts("k", p) for p in "abcde"))
    assert [parts for _, parts in backend.requests] == [["a", "b"], ["c", "d"], ["e"]]

    backend.requests.clear()
    by_weight: Coalescer[str, str, str] = Coalescer(
        backend.run, max_parts=100, max_weight=4, weight=len
    )
    # A part heavier than the bound alone still goes, on its own.
    await asyncio.gather(*(by_weight("k", p) for p in ["xx", "yy", "z", "wwwwww", "v"]))
    assert [parts for _, parts in backend.requests] == [["xx", "yy"], ["z"], ["wwwwww"], ["v"]]


async def test_a_refused_part_fails_alone() -> None:
    backend = Backend()
    coalesce: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=10)
    results = await asyncio.gather(
        coalesce("k", "a"), coalesce("k", "bad"), coalesce("k", "c"), return_exceptions=True
    )
    assert results[0] == "aa" and results[2] == "cc"
    assert isinstance(results[1], ValueError)


async def test_an_outage_fails_every_caller_without_retrying_each() -> None:
    backend = Backend()
    backend.down = True
    coalesce: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=10)
    results = await asyncio.gather(coalesce("k", "a"), coalesce("k", "b"), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)
    assert backend.requests == [("k", ["a", "b"])]


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    backend = Backend()
    coalesce: Coalescer[str, str, str] = Coalescer(backend.run, max_parts=10)
    first = asyncio.ensure_future(coalesce("k", "a"))
    second = asyncio.ensure_future(coalesce("k", "b"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "bb"
    with pytest.raises(asyncio.CancelledError):
        await first
