"""The services give freed heap back to the system every few seconds (glibc's malloc_trim)."""

import asyncio
import ctypes

import pytest

from services.common import memory


def _resident_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_trim_returns_freed_heap_to_the_system() -> None:
    trim = memory.malloc_trim()
    assert trim is not None  # glibc, as in the images and on the machines we run
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: free() alone keeps all of it
    # 40 MB of 8 KB blocks (under the mmap threshold: in the heap), all but every 64th
    # freed: the live ones pin the heap, so only malloc_trim can give the holes back.
    blocks = [libc.malloc(8192) for _ in range(5000)]
    for b in blocks:
        ctypes.memset(b, 1, 8192)
    kept = blocks[::64]
    for b in blocks:
        if b not in kept:
            libc.free(b)
    before = _resident_kb()
    trim()
    after = _resident_kb()
    for b in kept:
        libc.free(b)
    assert before - after > 20_000, (before, after)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def trim() -> int:
        calls.append(1)
        return 1

    monkeypatch.setattr(memory, "malloc_trim", lambda: trim)
    return calls


async def test_trims_every_interval_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(memory.trim_memory(0.05, stop))
    async with asyncio.timeout(10):
        while len(calls) < 3:  # it goes on trimming
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)  # and ends when told
    assert not task.cancelled()


async def test_interval_zero_never_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    await asyncio.wait_for(memory.trim_memory(0, asyncio.Event()), 1)
    assert calls == []
