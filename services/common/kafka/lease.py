"""Whether this process still owns the record it is working on.

The runner grants each record a lease on its partition; a rebalance that takes the partition
away ends the lease once in-flight work has had its drain time. Work with a side effect that
must not happen twice (an SMTP transaction) claims the lease just before it starts: the claim
fails once the lease has ended, and a claimed record is waited for after the drain time (for
a bounded grace) so that its outcome is recorded and committed before the new owner starts."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from services.common.errors import Fenced

Owns = Callable[[], bool]
"""True while the record's partition is still held by the lane that began it."""


class Lease:
    """One record's hold on its partition, created by the runner for the task handling it."""

    def __init__(self, owns: Owns) -> None:
        self.owns = owns
        self.claimed = False  # its side effect has begun: a revoke waits for it to finish


_CURRENT: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("lease", default=None)


def hold(owns: Owns) -> Lease:
    """Called by the runner inside the task that handles one record."""
    held = Lease(owns)
    _CURRENT.set(held)
    return held


def ensure_owned() -> None:
    """Raises Fenced when the partition of the record being handled was revoked. Outside a
    runner's task (unit tests, operator commands) there is no lease and nothing to check."""
    held = _CURRENT.get()
    if held is not None and not held.owns():
        raise Fenced("the partition was revoked; its new owner redoes this record")


def claim() -> None:
    """ensure_owned, then marks the record as past its last check: from here on its side
    effect may happen, and a revoke lets it finish instead of handing the record over
    while it runs. Nothing awaits between the check and the mark, so a revoke either ends
    the lease first (this raises Fenced) or sees the claim."""
    ensure_owned()
    held = _CURRENT.get()
    if held is not None:
        held.claimed = True
