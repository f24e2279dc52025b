"""What the runner hands a handler, and what a handler hands back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Header = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: list[Header] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[Header] | None = None
    # Outputs of a later stage are produced only once every earlier stage is acknowledged:
    # what a downstream service does with them is then causally after the earlier ones
    # (ingest's ACCEPTED event is on its topic before the router can reject the message).
    stage: int = 0


Handler = Callable[[Inbound], Awaitable[Sequence[Output]]]
"""Turns one input into its outputs. Raise InvalidData for a dead letter and TransientError
when infrastructure is unavailable (the lane waits and tries again); any other exception is
retried a bounded number of times, then the record is quarantined (see Quarantine)."""

Quarantine = Callable[[Inbound, Exception], Awaitable[Sequence[Output]]]
"""The terminal events for a record the lane gives up on: one per recipient it holds, so no
message is left without an outcome. Produced with the record's dead letter."""

DueAt = Callable[[Inbound], int | None]
"""For delay topics: the epoch ms at which a record may be processed (None: now)."""
