"""Per-destination traffic shaping: the MX host's provider class sets how many connections,
messages per connection and messages per second it gets (in the spirit of KumoMTA's
shaping file)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from services.common.bounded import MISSING, BoundedMap


class ProviderClass(BaseModel):
    """MX hosts matching pattern (a regex, searched in the lower-cased host name)."""

    model_config = ConfigDict(frozen=True)
    name: str
    pattern: str
    connections: int = 10
    messages_per_connection: int = 100
    messages_per_second: float = 0.0  # 0: no rate limit


# First match wins; "other" matches everything. Conservative starting points for the large
# mailbox providers, who throttle senders that open many connections or burst.
DEFAULT_CLASSES: tuple[ProviderClass, ...] = (
    ProviderClass(
        name="google",
        pattern=r"(^|\.)(google|googlemail)\.com$",
        connections=20,
        messages_per_connection=100,
        messages_per_second=50,
    ),
    ProviderClass(
        name="microsoft",
        pattern=r"(\.mail\.protection\.outlook\.com|(^|\.)(outlook|hotmail)\.com)$",
        connections=10,
        messages_per_connection=50,
        messages_per_second=20,
    ),
    ProviderClass(
        name="yahoo",
        pattern=r"(^|\.)(yahoodns\.net|yahoo\.com)$",
        connections=10,
        messages_per_connection=20,
        messages_per_second=10,
    ),
    ProviderClass(name="other", pattern=r".*"),
)


class TokenBucket:
    """rate tokens a second, bursts of up to `burst`; `reserve` says how long to wait."""

    def __init__(
        self, *, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def reserve(self) -> float:
        """Takes one token now or in the future; returns the seconds until it is ours."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def give_back(self) -> None:
        """Returns a reserved token that will not be used."""
        self._tokens += 1

    def full_in(self) -> float:
        """Seconds from the last reservation until the bucket is full again: from then on it
        is the same as a new one."""
        return max(0.0, self._burst - self._tokens) / self._rate


@dataclass(frozen=True)
class Destination:
    provider: ProviderClass
    key: str  # what the limits apply to: the provider for known ones, else the address


# Rate buckets held at once. Keys are the classes, plus an address for every MX of the "other"
# class when it has a rate. A bucket is dropped once it has refilled, which changes nothing;
# past the bound the least recently used goes early, and its destination gets up to one
# burst more than its rate.
MAX_BUCKETS = 10_000


class Shaper:
    def __init__(
        self,
        *,
        classes: list[ProviderClass],
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._classes = [(c, re.compile(c.pattern)) for c in classes]
        self._clock = clock
        self._buckets: BoundedMap[str, TokenBucket] = BoundedMap(
            max_entries=max_buckets, clock=clock
        )

    def destination(self, *, host: str, address: str) -> Destination:
        provider = next(c for c, rx in self._classes if rx.search(host.lower()))
        key = address if provider.name == "other" else f"class:{provider.name}"
        return Destination(provider, key)

    def reserve(self, destination: Destination) -> float:
        rate = destination.provider.messages_per_second
        if rate <= 0:
            return 0.0
        bucket = self._buckets.get(destination.key)
        if bucket is MISSING:
            bucket = TokenBucket(rate=rate, burst=max(1, rate), clock=self._clock)
        wait = bucket.reserve()
        self._buckets.put(destination.key, bucket, ttl_s=bucket.full_in())
        return wait

    def give_back(self, destination: Destination) -> None:
        bucket = self._buckets.get(destination.key)
        if bucket is not MISSING:
            bucket.give_back()
