"""Suppression list upkeep: a pure policy from events to suppressions, applied to the list
(common/suppressions.py owns its tables).

Rules (defaults in config.SuppressionSettings):
- a HARD bounce suppresses the lower-cased recipient for the tenant with reason = its category:
  for good for invalid_recipient and bad_domain, hard_expiry_s (30 days) for the others;
- soft_threshold (3) SOFT bounces of a counted category within soft_window_s (72 h) suppress
  it for soft_expiry_s (24 h); DEFERRED never counts, and each event_id counts once;
- a complaint suppresses for complaint_expiry_s (for good): the contract has no complaint event
  yet, so `on_complaint` is there for the feedback-loop consumer that will call it;
- a new suppression never shortens one already in place (permanent beats 30 days beats 24 h).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.common.avro.records import BounceKind, EmailEvent, EventType
from services.common.cassandra.session import AsyncSession
from services.common.logging import get_logger
from services.common.reasons import Reason
from services.common.suppressions import Suppress, SuppressionTable
from services.event_publisher.config import SuppressionSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class SoftBounce:
    """A soft bounce to count; it suppresses only once enough of them are recent."""

    tenant_id: str
    address: str
    event_id: str
    occurred_at: int
    category: str


def _expiry(at_ms: int, after_s: int) -> int | None:
    return at_ms + after_s * 1000 if after_s > 0 else None


def decide(event: EmailEvent, settings: SuppressionSettings) -> Suppress | SoftBounce | None:
    """What an event means for the suppression list, before counting soft bounces."""
    bounce = event.bounce
    if (
        not settings.enabled
        or event.type is not EventType.BOUNCED
        or event.recipient is None
        or bounce is None
    ):
        return None
    address = event.recipient.strip().lower()
    if bounce.kind is BounceKind.HARD:
        permanent = bounce.category in settings.permanent_categories
        return Suppress(
            tenant_id=event.tenant_id,
            address=address,
            reason=bounce.category,
            created_at=event.occurred_at,
            expires_at=None if permanent else _expiry(event.occurred_at, settings.hard_expiry_s),
        )
    if bounce.category not in settings.soft_categories:
        return None
    return SoftBounce(
        tenant_id=event.tenant_id,
        address=address,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        category=bounce.category,
    )


def after_soft_bounces(
    bounce: SoftBounce, recorded_at: Iterable[int], settings: SuppressionSettings
) -> Suppress | None:
    """recorded_at: when each recorded soft bounce of the address happened, this one included.
    The window ends at this bounce, not at the wall clock, so a replay decides the same."""
    start = bounce.occurred_at - settings.soft_window_s * 1000
    recent = sum(1 for at in recorded_at if start < at <= bounce.occurred_at)
    if recent < settings.soft_threshold:
        return None
    return Suppress(
        tenant_id=bounce.tenant_id,
        address=bounce.address,
        reason=Reason.SOFT_BOUNCES,
        created_at=bounce.occurred_at,
        expires_at=_expiry(bounce.occurred_at, settings.soft_expiry_s),
    )


def on_complaint(
    *, tenant_id: str, address: str, occurred_at: int, settings: SuppressionSettings
) -> Suppress:
    """A recipient complained (feedback loop, List-Unsubscribe): stop mailing them."""
    return Suppress(
        tenant_id=tenant_id,
        address=address.strip().lower(),
        reason=Reason.COMPLAINT,
        created_at=occurred_at,
        expires_at=_expiry(occurred_at, settings.complaint_expiry_s),
    )


def outlasts(new_expires: int | None, *, existing: bool, existing_expires: int | None) -> bool:
    """Whether a new suppression would last longer than the one in place, if any."""
    if not existing:
        return True
    if existing_expires is None:
        return False
    return new_expires is None or new_expires > existing_expires


class SuppressionStore:
    """Applies the policy to the suppression list; every write is an idempotent upsert."""

    def __init__(self, *, session: AsyncSession, settings: SuppressionSettings) -> None:
        self._table = SuppressionTable(session=session)
        self._settings = settings

    async def on_event(self, event: EmailEvent) -> Suppress | None:
        decision = decide(event, self._settings)
        if isinstance(decision, SoftBounce):
            decision = await self._count(decision)
        if decision is None:
            return None
        return decision if await self.suppress(decision) else None

    async def _count(self, bounce: SoftBounce) -> Suppress | None:
        recorded_at = await self._table.count_soft_bounce(
            tenant_id=bounce.tenant_id,
            address=bounce.address,
            event_id=bounce.event_id,
            occurred_at=bounce.occurred_at,
            category=bounce.category,
            window_s=self._settings.soft_window_s,
        )
        return after_soft_bounces(bounce, recorded_at, self._settings)

    async def suppress(self, suppression: Suppress) -> bool:
        """Writes the suppression unless a longer one is already in place."""
        s = suppression
        existing = await self._table.get(s.tenant_id, s.address)
        if not outlasts(
            s.expires_at,
            existing=existing is not None,
            existing_expires=existing.expires_at if existing is not None else None,
        ):
            log.info("suppression_kept", address=s.address, reason=s.reason)
            return False
        await self._table.put(s)
        log.info("address_suppressed", address=s.address, reason=s.reason, expires_at=s.expires_at)
        return True
