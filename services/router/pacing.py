"""Per-tenant send rates: each tenant's bulk mail is spaced by 1/rate seconds."""

from __future__ import annotations


class Pacer:
    """Hands out send slots: the next slot of a tenant is 1/rate after its previous one, and
    never in the past. Pure bookkeeping over an injected 'now'; the caller waits for the slot
    (briefly in place, or on a delay topic). Per router process: with N routers sharing a
    tenant's bulk partitions, each paces its share, so the tenant sees up to N x rate."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    def slot(self, key: str, *, rate_per_s: float, now_ms: float) -> float:
        """The epoch ms at which this message may go."""
        slot = max(now_ms, self._next.get(key, now_ms))
        self._next[key] = slot + 1000.0 / rate_per_s
        return slot
