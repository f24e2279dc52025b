import asyncio
import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from services.common.avro.records import Bounce, BounceKind, EmailEvent, EventType
from services.common.priority import Priority
from services.common.reasons import Reason
from services.common.suppressions import Suppress
from services.event_publisher.config import EventPublisherSettings, SuppressionSettings
from services.event_publisher.suppression import (
    SoftBounce,
    SuppressionStore,
    after_soft_bounces,
    decide,
    on_complaint,
    outlasts,
)

T0 = 1_700_000_000_000
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
SETTINGS = SuppressionSettings()


def _event(
    type: EventType = EventType.BOUNCED,
    *,
    kind: BounceKind | None = BounceKind.HARD,
    category: str = "invalid_recipient",
    recipient: str | None = "Bob@Example.COM",
    at: int = T0,
    event_id: str = "e1",
) -> EmailEvent:
    return EmailEvent(
        event_id=event_id,
        message_id="m1",
        tenant_id="acme",
        priority=Priority.TRANSACTIONAL,
        type=type,
        occurred_at=at,
        attempt=1,
        recipient=recipient,
        reason=category,
        bounce=Bounce(kind=kind, category=category) if kind is not None else None,
    )


@pytest.mark.parametrize(
    ("category", "expires_at"),
    [
        ("invalid_recipient", None),
        ("bad_domain", None),
        ("disabled_mailbox", T0 + 30 * DAY_MS),
        ("routing", T0 + 30 * DAY_MS),
        ("other", T0 + 30 * DAY_MS),
    ],
)
def test_a_hard_bounce_suppresses_the_lower_cased_recipient(
    category: str, expires_at: int | None
) -> None:
    assert decide(_event(category=category), SETTINGS) == Suppress(
        tenant_id="acme",
        address="bob@example.com",
        reason=category,
        created_at=T0,
        expires_at=expires_at,
    )


def test_the_hard_expiry_is_configurable_down_to_never() -> None:
    settings = SuppressionSettings(hard_expiry_s=0, permanent_categories=())
    decision = decide(_event(category="invalid_recipient"), settings)
    assert isinstance(decision, Suppress) and decision.expires_at is None
    decision = decide(_event(category="invalid_recipient"), SuppressionSettings(hard_expiry_s=60))
    assert isinstance(decision, Suppress) and decision.expires_at is None


@pytest.mark.parametrize(
    "event",
    [
        _event(EventType.DELIVERED, kind=None),
        _event(EventType.DEFERRED, kind=None, category="quota"),
        _event(EventType.SUPPRESSED, kind=None, category="suppressed"),
        _event(EventType.REJECTED, kind=None, category="invalid_address"),
        _event(recipient=None),
        _event(kind=BounceKind.SOFT, category="spam_block"),
        _event(kind=BounceKind.SOFT, category="authentication"),
    ],
)
def test_events_that_never_suppress(event: EmailEvent) -> None:
    assert decide(event, SETTINGS) is None


def test_nothing_suppresses_when_disabled() -> None:
    assert decide(_event(), SuppressionSettings(enabled=False)) is None


def test_a_soft_bounce_of_a_counted_category_is_to_be_counted() -> None:
    decision = decide(_event(kind=BounceKind.SOFT, category="quota", event_id="e9"), SETTINGS)
    assert decision == SoftBounce(
        tenant_id="acme",
        address="bob@example.com",
        event_id="e9",
        occurred_at=T0,
        category="quota",
    )


BOUNCE = SoftBounce("acme", "bob@example.com", "e3", T0, "quota")


@pytest.mark.parametrize(
    ("recorded", "suppressed"),
    [
        ([T0], False),
        ([T0 - HOUR_MS, T0], False),
        ([T0 - 2 * DAY_MS, T0 - HOUR_MS, T0], True),
        ([T0 - 72 * HOUR_MS, T0 - HOUR_MS, T0], False),  # the first fell out of the window
        ([T0 - 71 * HOUR_MS, T0 - HOUR_MS, T0], True),
        ([T0 - HOUR_MS, T0, T0 + HOUR_MS], False),  # a later one does not count for this one
        ([T0 - 3 * HOUR_MS, T0 - 2 * HOUR_MS, T0 - HOUR_MS, T0], True),
    ],
)
def test_repeated_soft_bounces_within_the_window_suppress_for_a_day(
    recorded: list[int], suppressed: bool
) -> None:
    decision = after_soft_bounces(BOUNCE, recorded, SETTINGS)
    if not suppressed:
        assert decision is None
        return
    assert decision == Suppress(
        tenant_id="acme",
        address="bob@example.com",
        reason=Reason.SOFT_BOUNCES,
        created_at=T0,
        expires_at=T0 + DAY_MS,
    )


def test_the_soft_threshold_is_configurable() -> None:
    settings = SuppressionSettings(soft_threshold=1, soft_expiry_s=60)
    decision = after_soft_bounces(BOUNCE, [T0], settings)
    assert decision is not None and decision.expires_at == T0 + 60_000


def test_a_complaint_suppresses_for_good_by_default() -> None:
    decision = on_complaint(
        tenant_id="acme", address=" Bob@Example.com", occurred_at=T0, settings=SETTINGS
    )
    assert decision == Suppress("acme", "bob@example.com", "complaint", T0, None)


@pytest.mark.parametrize(
    ("new", "existing", "existing_expires", "writes"),
    [
        (T0, False, None, True),
        (None, True, T0, True),
        (T0 + DAY_MS, True, T0, True),
        (T0, True, T0 + DAY_MS, False),
        (T0, True, None, False),
        (None, True, None, False),
    ],
)
def test_a_suppression_is_never_shortened(
    new: int | None, existing: bool, existing_expires: int | None, writes: bool
) -> None:
    assert outlasts(new, existing=existing, existing_expires=existing_expires) is writes


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTREAM_SUPPRESSION__SOFT_THRESHOLD", "5")
    monkeypatch.setenv("MAILSTREAM_SUPPRESSION__HARD_EXPIRY_S", "0")
    settings = EventPublisherSettings().suppression
    assert settings.soft_threshold == 5 and settings.hard_expiry_s == 0
    assert settings.soft_window_s == 72 * 3600


class _Row:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _cql_ts(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


class FakeSession:
    """Just enough of AsyncSession: soft bounces and suppressions kept in dicts."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.soft: dict[tuple[str, str, str], int] = {}
        self.suppressions: dict[tuple[str, str], tuple[str, int | None]] = {}

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.statements.append(cql.split()[0])
        if cql.startswith("INSERT INTO soft_bounces"):
            tenant, address, event_id, at, _category, _ttl = params
            self.soft[(tenant, address, event_id)] = at
            return []
        if cql.startswith("SELECT occurred_at FROM soft_bounces"):
            return [_Row(occurred_at=_cql_ts(at)) for k, at in self.soft.items() if k[:2] == params]
        if cql.startswith("SELECT address, reason, created_at, expires_at FROM suppressions"):
            found = self.suppressions.get((params[0], params[1]))
            if found is None:
                return []
            expires = _cql_ts(found[1]) if found[1] is not None else None
            return [
                _Row(address=params[1], reason=found[0], created_at=_cql_ts(0), expires_at=expires)
            ]
        if cql.startswith("INSERT INTO suppressions"):
            tenant, address, reason, _created, expires, ttl = params
            # The row lapses with the suppression; a permanent one has no TTL.
            assert (ttl == 0) == (expires is None), (expires, ttl)
            self.suppressions[(tenant, address)] = (reason, expires)
            return []
        raise AssertionError(cql)


def test_the_store_counts_each_event_once_and_suppresses_at_the_threshold() -> None:
    session = FakeSession()
    store = SuppressionStore(session=session, settings=SETTINGS)  # type: ignore[arg-type]
    soft = _event(kind=BounceKind.SOFT, category="quota")

    async def run() -> None:
        assert await store.on_event(replace(soft, event_id="a", occurred_at=T0)) is None
        # A replay of the same event does not count twice.
        assert await store.on_event(replace(soft, event_id="a", occurred_at=T0)) is None
        assert await store.on_event(replace(soft, event_id="b", occurred_at=T0 + 1)) is None
        third = await store.on_event(replace(soft, event_id="c", occurred_at=T0 + 2))
        assert third is not None and third.reason == Reason.SOFT_BOUNCES
        assert session.suppressions[("acme", "bob@example.com")] == (
            Reason.SOFT_BOUNCES,
            T0 + 2 + DAY_MS,
        )
        # A hard bounce makes it permanent; a later soft suppression does not shorten it.
        assert await store.on_event(replace(_event(), occurred_at=T0 + 3)) is not None
        assert await store.on_event(replace(soft, event_id="d", occurred_at=T0 + 4)) is None
        assert session.suppressions[("acme", "bob@example.com")] == ("invalid_recipient", None)

    asyncio.run(run())
