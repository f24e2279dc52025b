"""The C allocator of the sender process: one malloc arena, set before any thread starts."""

from __future__ import annotations

import ctypes

_M_ARENA_MAX = -8  # glibc's <malloc.h>


def single_malloc_arena() -> bool:
    """glibc gives each new thread a malloc arena of its own (up to 8 per core). Record
    values are allocated on the consumer threads, where librdkafka hands them to Python, and
    Cassandra results on the driver's thread; both are freed on the event loop's. Each arena
    kept what was freed into it: in a 20,000-message backlog 30-48 MB were in use and 61 MB
    free in arenas, held as RSS, which rose ~2 KB per message (peak 184 MB). With one arena
    what one thread frees another reuses (peak 147 MB, flat). False where there is no glibc
    mallopt (musl accepts and ignores it, macOS lacks it): nothing changes there."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))
