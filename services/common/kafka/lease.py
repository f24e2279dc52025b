"""Whether this process still owns the record it is working on.

The runner grants each record a lease on its partition; a rebalance that takes the partition
away ends the lease once in-flight work has had its drain time. Work with a side effect that
must not happen twice (an SMTP transaction) checks the lease just before it starts."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from services.common.errors import Fenced

Lease = Callable[[], bool]
"""True while the record's partition is still held by the lane that began it."""

_CURRENT: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("lease", default=None)


def hold(lease: Lease) -> None:
    """Called by the runner inside the task that handles one record."""
    _CURRENT.set(lease)


def ensure_owned() -> None:
    """Raises Fenced when the partition of the record being handled was revoked. Outside a
    runner's task (unit tests, operator commands) there is no lease and nothing to check."""
    lease = _CURRENT.get()
    if lease is not None and not lease():
        raise Fenced("the partition was revoked; its new owner redoes this record")
