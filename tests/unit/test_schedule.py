from services.common.priority import Priority
from services.common.schedule import RetryPolicy, next_attempt

POLICY = RetryPolicy(
    tiers_s=(60, 300, 1200),
    max_age_s={Priority.CRITICAL: 900, Priority.TRANSACTIONAL: 72 * 3600, Priority.BULK: 24 * 3600},
)
T0 = 1_000_000


def test_tiers_follow_the_attempt_number_and_the_last_is_reused() -> None:
    dues = [
        next_attempt(
            POLICY, priority=Priority.BULK, attempt=a, accepted_at=T0, expires_at=None, now_ms=T0
        )
        for a in (1, 2, 3, 4, 9)
    ]
    assert [d.tier_s for d in dues if d] == [60, 300, 1200, 1200, 1200]
    assert dues[0] is not None and dues[0].due_ms == T0 + 60_000


def test_critical_expires_when_the_next_attempt_would_pass_its_max_age() -> None:
    assert (
        next_attempt(
            POLICY,
            priority=Priority.CRITICAL,
            attempt=2,
            accepted_at=T0,
            expires_at=None,
            now_ms=T0 + 120_000,
        )
        is not None
    )
    assert (
        next_attempt(
            POLICY,
            priority=Priority.CRITICAL,
            attempt=3,
            accepted_at=T0,
            expires_at=None,
            now_ms=T0 + 120_000,
        )
        is None
    )


def test_expires_at_is_a_hard_deadline() -> None:
    assert (
        next_attempt(
            POLICY,
            priority=Priority.BULK,
            attempt=1,
            accepted_at=T0,
            expires_at=T0 + 30_000,
            now_ms=T0,
        )
        is None
    )


def test_retry_after_hint_moves_to_a_longer_tier() -> None:
    nxt = next_attempt(
        POLICY,
        priority=Priority.BULK,
        attempt=1,
        accepted_at=T0,
        expires_at=None,
        now_ms=T0,
        retry_after_s=200,
    )
    assert nxt is not None and nxt.tier_s == 300


def test_max_age_counts_from_send_at_when_later() -> None:
    day = 24 * 3600 * 1000
    later = T0 + 2 * day
    assert (
        POLICY.deadline_ms(priority=Priority.BULK, accepted_at=T0, expires_at=None, send_at=later)
        == later + day
    )
    assert (
        next_attempt(
            POLICY,
            priority=Priority.BULK,
            attempt=1,
            accepted_at=T0,
            expires_at=None,
            now_ms=later + 1000,
            send_at=later,
        )
        is not None
    )
    assert (
        next_attempt(
            POLICY,
            priority=Priority.BULK,
            attempt=1,
            accepted_at=T0,
            expires_at=None,
            now_ms=later + 1000,
        )
        is None
    )
