import asyncio

from services.sender.slots import PrioritySlots


async def test_the_most_urgent_waiter_gets_the_next_slot() -> None:
    slots = PrioritySlots(slots=1)
    order: list[str] = []
    await slots.acquire(2)

    async def take(name: str, rank: int) -> None:
        async with slots.slot(rank):
            order.append(name)

    tasks = [asyncio.create_task(take(f"bulk{i}", 2)) for i in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("critical", 0)))
    await asyncio.sleep(0)
    assert slots.waiting == 4
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["critical", "bulk0", "bulk1", "bulk2"]


async def test_a_cancelled_waiter_does_not_leak_its_slot() -> None:
    slots = PrioritySlots(slots=1)
    await slots.acquire(1)
    waiter = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    slots.release()
    await asyncio.wait_for(slots.acquire(0), 1)
