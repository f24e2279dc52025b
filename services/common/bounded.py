"""The one bounded cache: a map of at most max_entries, least recently used out first, with TTLs."""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Missing(enum.Enum):
    """What `get` returns for no live entry: None is a value worth caching (no such tenant)."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING


class BoundedMap(Generic[K, V]):
    """For every map whose keys come from traffic (domains, MX addresses, tenants): without
    a bound such a map grows with every key ever seen, and one sender spraying random domains
    would grow it until the pod is killed.

    An entry lives ttl_s seconds after it was put (the map's own, or the put's; None: until
    evicted). Reading a live entry makes it the most recently used; an expired one is dropped
    when read, or when it reaches the least recently used end. Not thread-safe: for the tasks
    of one event loop."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max = max_entries
        self._ttl = math.inf if ttl_s is None else ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # key -> (expires at, v)

    @property
    def max_entries(self) -> int:
        return self._max

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included: what the bound is about."""
        return len(self._entries)

    def get(self, key: K) -> V | Literal[Missing.MISSING]:
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= self._clock():
            del self._entries[key]
            return MISSING
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, *, ttl_s: float | None = None) -> list[tuple[K, V]]:
        """Stores value as the most recently used (ttl_s None: the map's TTL). Returns the
        entries evicted to make room, least recently used first, for a caller whose values
        hold resources (connections) to release them. Such a caller sets no TTL: `get` drops
        an expired entry without handing it back."""
        self._entries[key] = (self._clock() + (self._ttl if ttl_s is None else ttl_s), value)
        self._entries.move_to_end(key)
        evicted: list[tuple[K, V]] = []
        while len(self._entries) > self._max:
            old_key, (_, old) = self._entries.popitem(last=False)
            evicted.append((old_key, old))
        return evicted

    def pop(self, key: K) -> V | Literal[Missing.MISSING]:
        """Removes the key's entry; its value even if expired (the caller may hold it open)."""
        entry = self._entries.pop(key, None)
        return MISSING if entry is None else entry[1]

    def drain(self) -> list[V]:
        """Empties the map, returning every value it held, expired ones included."""
        values = [value for _, value in self._entries.values()]
        self._entries.clear()
        return values
