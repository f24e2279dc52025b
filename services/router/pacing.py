"""Per-tenant send rates: each tenant's bulk mail is spaced by 1/rate seconds."""

from __future__ import annotations

from services.common.bounded import MISSING, BoundedMap

# Tenants paced at once. A tenant's next slot is forgotten only when this many others were
# paced since its last message: by then that slot has almost surely passed, and a forgotten
# slot behaves as one in the past.
MAX_PACED_TENANTS = 10_000


class Pacer:
    """Hands out send slots: the next slot of a tenant is 1/rate after its previous one, and
    never in the past. Pure bookkeeping over an injected 'now'; the caller waits for the slot
    (briefly in place, or on a delay topic). Per router process: with N routers sharing a
    tenant's bulk partitions, each paces its share, so the tenant sees up to N x rate."""

    def __init__(self, *, max_tenants: int = MAX_PACED_TENANTS) -> None:
        self._next: BoundedMap[str, float] = BoundedMap(max_entries=max_tenants)

    def slot(self, key: str, *, rate_per_s: float, now_ms: float) -> float:
        """The epoch ms at which this message may go."""
        previous = self._next.get(key)
        slot = now_ms if previous is MISSING else max(now_ms, previous)
        self._next.put(key, slot + 1000.0 / rate_per_s)
        return slot
