"""Bulk pacing: slots spaced by the tenant's rate, booked only when a task could go."""

from __future__ import annotations

from typing import Any

from services.common.avro.records import DeliveryTask
from services.common.clock import FixedClock
from services.common.priority import Priority
from services.common.tenants import Tenant
from services.router.pacing import BulkPacing, Pacer

NOW = 1_000_000_000
WEEK_MS = 7 * 24 * 3600 * 1000
RATE = 0.5  # one message per 2 s: every slot after the first is too far off to wait in place
PACED = Tenant("paced", frozenset({"paced.example"}), {"bulk_per_second": RATE})


def test_slots_are_spaced_by_the_rate_and_never_in_the_past() -> None:
    pacer = Pacer()
    slots = [pacer.slot("acme", rate_per_s=4, now_ms=1000) for _ in range(3)]
    assert slots == [1000, 1250, 1500]
    assert pacer.slot("acme", rate_per_s=4, now_ms=5000) == 5000  # idle time is not banked
    assert pacer.slot("other", rate_per_s=1, now_ms=1000) == 1000  # tenants are independent


class Tenants:
    """The tenant directory's one method, over a fixed set."""

    def __init__(self, *tenants: Tenant) -> None:
        self._by_id = {t.tenant_id: t for t in tenants}
        self.lookups = 0

    async def get(self, tenant_id: str) -> Tenant | None:
        self.lookups += 1
        return self._by_id.get(tenant_id)


def _pacing(clock: FixedClock, tenants: Tenants | None = None) -> BulkPacing:
    directory: Any = tenants or Tenants(PACED)  # stands in for a TenantDirectory
    return BulkPacing(pacer=Pacer(), tenants=directory, clock=clock)


def _task(**fields: Any) -> DeliveryTask:
    base: dict[str, Any] = {
        "message_id": "m1",
        "tenant_id": "paced",
        "priority": Priority.BULK,
        "recipient": "bob@example.org",
        "mail_from": "bounces@paced.example",
        "mx_hosts": [],
        "mime": b"",
        "sender_domain": "paced.example",
        "attempt": 0,
        "accepted_at": NOW,
    }
    return DeliveryTask(**{**base, **fields})


async def test_bulk_after_the_first_slot_is_made_due_at_its_own_slot() -> None:
    pacing = _pacing(FixedClock(now_ms=NOW))
    first = await pacing.at_acceptance(_task(), PACED)
    second = await pacing.at_acceptance(_task(message_id="m2"), PACED)
    assert first.not_before is None  # its slot is now
    assert second.not_before == NOW + 2000


async def test_a_task_scheduled_next_week_does_not_hold_the_tenants_other_bulk_mail() -> None:
    pacing = _pacing(FixedClock(now_ms=NOW))
    later = await pacing.at_acceptance(
        _task(send_at=NOW + WEEK_MS, not_before=NOW + WEEK_MS), PACED
    )
    assert later.not_before == NOW + WEEK_MS  # waits for its send_at, no slot booked
    now = await pacing.at_acceptance(_task(message_id="m2"), PACED)
    assert now.not_before is None  # goes now, not a week from now


async def test_a_scheduled_task_takes_its_slot_when_due_and_only_once() -> None:
    clock = FixedClock(now_ms=NOW)
    pacing = _pacing(clock)
    send_at = NOW + WEEK_MS
    scheduled = await pacing.at_acceptance(_task(send_at=send_at, not_before=send_at), PACED)
    clock.advance(WEEK_MS)
    busy = await pacing.at_acceptance(_task(message_id="m2"), PACED)  # takes the slot at send_at
    assert busy.not_before is None
    due = await pacing.when_due(scheduled)
    assert due.not_before == send_at + 2000  # the next slot, not send_at
    clock.advance(2000)
    again = await pacing.when_due(due)  # due at its slot: not paced a second time
    assert again == due


async def test_a_scheduled_task_with_a_free_slot_goes_when_due() -> None:
    clock = FixedClock(now_ms=NOW)
    pacing = _pacing(clock)
    send_at = NOW + 60_000
    scheduled = await pacing.at_acceptance(_task(send_at=send_at, not_before=send_at), PACED)
    clock.advance(60_000)
    assert await pacing.when_due(scheduled) == scheduled
    # and it booked its slot: the next bulk task waits for the one after
    nxt = await pacing.at_acceptance(_task(message_id="m2"), PACED)
    assert nxt.not_before == send_at + 2000


async def test_retries_and_other_priorities_are_not_paced_when_due() -> None:
    tenants = Tenants(PACED)
    pacing = _pacing(FixedClock(now_ms=NOW), tenants)
    retry = _task(attempt=1, send_at=NOW, not_before=NOW)
    critical = _task(priority=Priority.CRITICAL, send_at=NOW, not_before=NOW)
    paced_already = _task(send_at=NOW - 4000, not_before=NOW)
    for task in (retry, critical, paced_already):
        assert await pacing.when_due(task) == task
    assert tenants.lookups == 0  # none of them costs a tenant lookup


async def test_a_tenant_without_a_rate_is_not_paced() -> None:
    free = Tenant("free", frozenset({"free.example"}))
    pacing = _pacing(FixedClock(now_ms=NOW), Tenants(free))
    for i in range(3):
        task = _task(message_id=f"m{i}", tenant_id="free")
        assert await pacing.at_acceptance(task, free) == task
    scheduled = _task(tenant_id="free", send_at=NOW, not_before=NOW)
    assert await pacing.when_due(scheduled) == scheduled
