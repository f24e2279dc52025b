import pytest

from services.common.config import CommonSettings
from services.common.kafka.topics import Topics
from services.common.priority import Priority


def test_public_topic_names_follow_the_contract() -> None:
    topics = Topics()
    assert [topics.requested(p) for p in Priority] == [
        "email.requested.critical",
        "email.requested.transactional",
        "email.requested.bulk",
    ]
    assert topics.events == "email.events"
    assert topics.requests_dlq == "email.requested.dlq"


def test_prefix_applies_to_every_topic() -> None:
    settings = CommonSettings()
    specs = Topics("t1.", (1, 60, 3600)).specs(settings.kafka)
    assert all(s.name.startswith("t1.") for s in specs)
    names = {s.name for s in specs}
    for p in ("critical", "transactional", "bulk"):
        assert {f"t1.mailstream.delay.{p}.{t}" for t in ("1s", "1m", "1h")} <= names
        assert f"t1.mailstream.status.{p}" in names
    # The shared topics of earlier releases are still provisioned, so they can be drained.
    assert {"t1.mailstream.delay.1s", "t1.mailstream.status"} <= names


def test_each_priority_has_its_own_retries_and_events() -> None:
    topics = Topics("", (60, 300))
    paths = [(*topics.delays(p), topics.status(p)) for p in Priority]
    assert len({t for path in paths for t in path}) == 3 * 3
    assert not {t for path in paths for t in path} & {*topics.legacy_delays, topics.legacy_status}


def test_delay_tier_lookup() -> None:
    topics = Topics("", (60, 300))
    for p in Priority:
        assert topics.delay_tier_of(topics.delay(300, p)) == 300
    assert topics.delay_tier_of(topics.legacy_delays[0]) == 60
    with pytest.raises(KeyError):
        topics.delay_tier_of("email.events")


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("MAILSTREAM_CASSANDRA__PORT", "7")
    monkeypatch.setenv("MAILSTREAM_DELAY_TIERS_S", "[1,2]")
    settings = CommonSettings()
    assert settings.kafka.bootstrap_servers == "k:1"
    assert settings.cassandra.port == 7
    assert settings.delay_tiers_s == (1, 2)
