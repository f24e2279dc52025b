"""Results posted from another thread reach the loop in order, many per wake-up, none lost."""

from __future__ import annotations

import asyncio
import threading

from services.common.handoff import LoopHandoff


async def test_posts_from_threads_all_arrive_in_order_in_few_wakeups() -> None:
    loop = asyncio.get_running_loop()
    handoff = LoopHandoff(loop)
    drains = 0
    real = handoff._drain

    def counting() -> None:
        nonlocal drains
        drains += 1
        real()

    handoff._drain = counting  # type: ignore[method-assign]
    got: dict[int, list[int]] = {0: [], 1: []}
    done = asyncio.Event()
    per_thread = 20_000

    def note(thread: int, i: int) -> None:
        got[thread].append(i)
        if len(got[0]) + len(got[1]) == 2 * per_thread:
            done.set()

    def produce(thread: int) -> None:
        for i in range(per_thread):
            handoff.post(note, thread, i)

    threads = [threading.Thread(target=produce, args=(t,)) for t in (0, 1)]
    for t in threads:
        t.start()
    await asyncio.wait_for(done.wait(), 30)
    for t in threads:
        t.join()
    assert got == {0: list(range(per_thread)), 1: list(range(per_thread))}
    assert drains < per_thread  # bursts share a wake-up


async def test_a_failing_callback_does_not_strand_the_rest() -> None:
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
    handoff = LoopHandoff(loop)
    got: list[int] = []

    def boom() -> None:
        raise ValueError("bad")

    threading.Thread(target=lambda: (handoff.post(boom), handoff.post(got.append, 1))).start()
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [1] and isinstance(errors[0], ValueError)


def test_a_post_after_the_loop_closed_is_dropped() -> None:
    loop = asyncio.new_event_loop()
    handoff = LoopHandoff(loop)
    loop.close()
    handoff.post(print, "never")  # no exception; nothing waits for it
    handoff.post(print, "never")
