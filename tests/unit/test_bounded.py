"""The bounded cache: least recently used out first, TTLs by an injected clock, evictions handed
back to the caller."""

from __future__ import annotations

import pytest

from services.common.bounded import MISSING, BoundedMap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_goes_first() -> None:
    cache: BoundedMap[str, int] = BoundedMap(max_entries=3)
    for i, key in enumerate("abc"):
        assert cache.put(key, i) == []
    assert cache.get("a") == 0  # a is now the most recently used: b goes next
    assert cache.put("d", 3) == [("b", 1)]
    assert cache.put("e", 4) == [("c", 2)]
    assert [cache.get(k) for k in "abcde"] == [0, MISSING, MISSING, 3, 4]
    assert len(cache) == 3


def test_putting_a_key_again_refreshes_it_without_growing() -> None:
    cache: BoundedMap[str, int] = BoundedMap(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.put("a", 10) == []
    assert len(cache) == 2
    assert cache.put("c", 3) == [("b", 2)]
    assert cache.get("a") == 10


def test_none_is_a_value_not_a_miss() -> None:
    cache: BoundedMap[str, str | None] = BoundedMap(max_entries=2)
    cache.put("unknown", None)
    assert cache.get("unknown") is None
    assert cache.get("never") is MISSING


def test_entries_expire_after_the_map_ttl_or_their_own() -> None:
    clock = Clock()
    cache: BoundedMap[str, int] = BoundedMap(max_entries=10, ttl_s=5.0, clock=clock)
    cache.put("default", 1)
    cache.put("short", 2, ttl_s=1.0)
    cache.put("long", 3, ttl_s=60.0)
    clock.now += 1.0  # an entry is live strictly before its expiry
    assert [cache.get(k) for k in ("default", "short", "long")] == [1, MISSING, 3]
    clock.now += 4.0
    assert [cache.get(k) for k in ("default", "short", "long")] == [MISSING, MISSING, 3]
    assert len(cache) == 1  # expired entries are dropped when read


def test_reading_does_not_extend_a_ttl() -> None:
    clock = Clock()
    cache: BoundedMap[str, int] = BoundedMap(max_entries=10, ttl_s=2.0, clock=clock)
    cache.put("a", 1)
    clock.now += 1.5
    assert cache.get("a") == 1
    clock.now += 1.0
    assert cache.get("a") is MISSING


def test_no_ttl_lives_until_evicted() -> None:
    clock = Clock()
    cache: BoundedMap[str, int] = BoundedMap(max_entries=1, clock=clock)
    cache.put("a", 1)
    clock.now += 1e9
    assert cache.get("a") == 1


def test_many_distinct_keys_keep_the_size_at_the_bound() -> None:
    cache: BoundedMap[int, int] = BoundedMap(max_entries=100, ttl_s=60.0)
    evicted = sum(len(cache.put(i, i)) for i in range(10_000))
    assert len(cache) == 100
    assert evicted == 9_900
    assert cache.get(9_999) == 9_999 and cache.get(0) is MISSING


def test_pop_and_drain_hand_back_values() -> None:
    clock = Clock()
    cache: BoundedMap[str, int] = BoundedMap(max_entries=5, ttl_s=1.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    clock.now += 10  # expired, but a caller holding resources still gets them back
    assert cache.pop("a") == 1
    assert cache.pop("a") is MISSING
    assert cache.drain() == [2]
    assert len(cache) == 0


def test_the_bound_must_hold_something() -> None:
    with pytest.raises(ValueError):
        BoundedMap[str, int](max_entries=0)
