"""One way to run a service: SIGTERM sets a flag, the runner drains, flushes, commits, exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger

log = get_logger(__name__)


def run_service(
    name: str, main: Callable[[asyncio.Event], Awaitable[None]], *, event_loop: str = "asyncio"
) -> None:
    """Runs main(stop) until it returns; exits 1 if it raised, so a supervisor restarts us.
    event_loop "uvloop" runs it on libuv, which costs less CPU per socket operation."""

    async def supervise() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service_starting", service=name)
        await main(stop)

    try:
        if event_loop == "uvloop":
            import uvloop

            uvloop.run(supervise())
        else:
            asyncio.run(supervise())
    except Exception as exc:
        log.error("service_crashed", service=name, exc_info=exc)
        sys.exit(1)
    log.info("service_stopped", service=name)
