"""The C allocator of the services' processes (glibc's malloc), tuned from Python.

glibc keeps what Python and the C libraries free in the heap for reuse, and can return it
to the system only from the heap's top: a few live blocks above a freed stretch hold it all
resident. malloc_trim(0) also releases whole free pages inside the heap (madvise), so every
service calls it every few seconds and its resident size follows what is in use; the
sender, whose memory moves between threads, also keeps to one arena. Where the C library
is not glibc (musl accepts mallopt and ignores it, macOS has neither), nothing changes.
Figures: bench/README.md, "Results of the last runs" (what holds the sender's memory)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import Callable

from services.common.logging import get_logger

log = get_logger(__name__)


_M_ARENA_MAX = -8  # glibc's <malloc.h>


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def single_malloc_arena() -> bool:
    """glibc gives each new thread a malloc arena of its own (up to 8 per core); call this
    before any thread starts. In the sender, record values are allocated on the consumer
    threads, where librdkafka hands them to Python, and Cassandra results on the driver's
    thread; both are freed on the event loop's. Each arena kept what was freed into it: in a
    20,000-message backlog 30-48 MB were in use and 61 MB free in arenas, held as RSS (peak
    184 MB). With one arena what one thread frees another reuses (peak 147 MB). False where
    there is no glibc mallopt."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))


def malloc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), or None where the C library has none."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trim_memory(interval_s: float, stop: asyncio.Event) -> None:
    """Until stop is set, every interval_s: returns free heap pages to the system, on a
    worker thread (it walks the heap under the allocator's lock, not the event loop's time)."""
    trim = malloc_trim()
    if trim is None or interval_s <= 0:
        log.info("memory_trim_off", reason="no malloc_trim" if trim is None else "interval 0")
        return
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
            return
        await asyncio.to_thread(trim)
