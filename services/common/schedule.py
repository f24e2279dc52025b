"""When the next delivery attempt is due: a pure function of policy, attempt and age."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.avro.records import DeliveryTask
from services.common.config import CommonSettings
from services.common.priority import Priority
from services.common.reasons import Reason


@dataclass(frozen=True)
class RetryPolicy:
    tiers_s: tuple[int, ...]
    max_age_s: dict[Priority, int]

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> RetryPolicy:
        return cls(
            tiers_s=settings.delay_tiers_s,
            max_age_s={
                Priority.CRITICAL: settings.max_age_critical_s,
                Priority.TRANSACTIONAL: settings.max_age_transactional_s,
                Priority.BULK: settings.max_age_bulk_s,
            },
        )

    def deadline_ms(
        self,
        *,
        priority: Priority,
        accepted_at: int,
        expires_at: int | None,
        send_at: int | None = None,
    ) -> int:
        """The maximum age counts from when the message was first due: accepted or send_at."""
        deadline = max(accepted_at, send_at or 0) + self.max_age_s[priority] * 1000
        return min(deadline, expires_at) if expires_at is not None else deadline

    def deadline_for(self, task: DeliveryTask) -> int:
        return self.deadline_ms(
            priority=task.priority,
            accepted_at=task.accepted_at,
            expires_at=task.expires_at,
            send_at=task.send_at,
        )

    def tier_for_delay(self, delay_s: float) -> int:
        """The shortest tier at least delay_s long (the last tier if none is)."""
        for tier in self.tiers_s:
            if tier >= delay_s:
                return tier
        return self.tiers_s[-1]


@dataclass(frozen=True)
class NextAttempt:
    tier_s: int
    due_ms: int


def next_attempt(
    policy: RetryPolicy,
    *,
    priority: Priority,
    attempt: int,
    accepted_at: int,
    expires_at: int | None,
    now_ms: int,
    retry_after_s: int | None = None,
    send_at: int | None = None,
) -> NextAttempt | None:
    """attempt = attempts made so far (>= 1). None: the message may not be tried again."""
    tier = policy.tiers_s[min(max(attempt, 1) - 1, len(policy.tiers_s) - 1)]
    if retry_after_s is not None and retry_after_s > tier:
        tier = policy.tier_for_delay(retry_after_s)
    due = now_ms + tier * 1000
    deadline = policy.deadline_ms(
        priority=priority, accepted_at=accepted_at, expires_at=expires_at, send_at=send_at
    )
    if due >= deadline:
        return None
    return NextAttempt(tier_s=tier, due_ms=due)


def expiry_reason(task: DeliveryTask, policy: RetryPolicy) -> Reason:
    """`expired` when the request's own expires_at ran out first, else `max_age_exceeded`."""
    deadline = policy.deadline_for(task)
    binding = task.expires_at is not None and task.expires_at == deadline
    return Reason.EXPIRED if binding else Reason.MAX_AGE_EXCEEDED
