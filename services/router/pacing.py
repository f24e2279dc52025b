"""Per-tenant send rates: each tenant's bulk mail is spaced by 1/rate seconds."""

from __future__ import annotations

import asyncio
import dataclasses

from services.common.avro.records import DeliveryTask
from services.common.bounded import MISSING, BoundedMap
from services.common.clock import Clock
from services.common.priority import Priority
from services.common.tenants import Tenant, TenantDirectory

# Tenants paced at once. A tenant's next slot is forgotten only when this many others were
# paced since its last message: by then that slot has almost surely passed, and a forgotten
# slot behaves as one in the past.
MAX_PACED_TENANTS = 10_000
# A slot at most this far off is waited for in place; a later one makes the task due then
# (it goes to a delay topic, so no consumer sleeps for long).
WAIT_IN_PLACE_MS = 1000


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


def bulk_rate(priority: Priority, tenant: Tenant | None) -> float | None:
    """The tenant's bulk messages per second, or None when this task is not paced."""
    if priority is not Priority.BULK or tenant is None:
        return None
    rate = tenant.limits.get("bulk_per_second")
    return rate if rate and rate > 0 else None


class BulkPacing:
    """When a tenant's bulk task takes its slot. A slot is booked only when the task could go
    now: a task scheduled (send_at) more than a moment ahead books nothing at acceptance, since
    a slot booked next week would hold all of the tenant's bulk mail until then; it books its
    slot when it comes due on the delay topics (`when_due`). A booked slot far enough off is
    written into not_before, which then differs from send_at: that is how a due task tells it
    was paced already. Retries are not paced (they were when first tried)."""

    def __init__(self, *, pacer: Pacer, tenants: TenantDirectory, clock: Clock) -> None:
        self._pacer = pacer
        self._tenants = tenants
        self._clock = clock

    async def at_acceptance(self, task: DeliveryTask, tenant: Tenant | None) -> DeliveryTask:
        rate = bulk_rate(task.priority, tenant)
        if rate is None:
            return task
        now = self._clock.now_ms()
        if task.not_before is not None and task.not_before - now > WAIT_IN_PLACE_MS:
            return task  # scheduled: paced when due
        return await self._take_slot(task, rate, now)

    async def when_due(self, task: DeliveryTask) -> DeliveryTask:
        """A task read from a delay topic, due now: paced if it is a scheduled first attempt
        that booked no slot at acceptance."""
        unpaced = task.attempt == 0 and task.send_at is not None and task.not_before == task.send_at
        if not unpaced or task.priority is not Priority.BULK:
            return task
        rate = bulk_rate(task.priority, await self._tenants.get(task.tenant_id))
        if rate is None:
            return task
        return await self._take_slot(task, rate, self._clock.now_ms())

    async def _take_slot(self, task: DeliveryTask, rate: float, now: int) -> DeliveryTask:
        slot = self._pacer.slot(
            task.tenant_id, rate_per_s=rate, now_ms=max(now, task.not_before or 0)
        )
        if slot - now <= WAIT_IN_PLACE_MS:
            await asyncio.sleep(max(0.0, slot - now) / 1000)
            return task
        return dataclasses.replace(task, not_before=int(slot))
