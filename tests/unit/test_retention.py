"""Retention of the tables that grow with traffic, and the migrations that create them."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.cassandra import retention
from services.common.cassandra.migrations import MIGRATIONS_DIR, load_migrations
from services.common.cassandra.retention import RetentionSettings, TableRetention
from services.common.cassandra.steps import StepContext
from services.common.config import CommonSettings, KafkaSettings
from services.common.errors import ConfigError


def test_the_defaults_pass_their_own_check() -> None:
    kept = retention.checked(CommonSettings())
    # 7 days: above the 72 h transactional maximum age plus the one-day margin.
    assert kept.dedupe_ttl_s == 7 * 24 * 3600 >= 72 * 3600 + kept.dedupe_margin_s


def test_a_dedupe_window_shorter_than_a_max_age_plus_margin_is_refused() -> None:
    settings = CommonSettings(
        max_age_transactional_s=10 * 24 * 3600,
        retention=RetentionSettings(dedupe_ttl_s=7 * 24 * 3600),
    )
    with pytest.raises(ConfigError) as caught:
        retention.checked(settings)
    text = str(caught.value)
    assert "MAILSTREAM_MAX_AGE_TRANSACTIONAL_S" in text
    assert f"at least {11 * 24 * 3600}" in text


def test_the_requests_topic_retention_bounds_the_dedupe_window_too() -> None:
    """A request redelivered from email.requested.* after its claim expired is sent again."""
    settings = CommonSettings(
        kafka=KafkaSettings(requests_retention_ms=14 * 24 * 3600 * 1000),
    )
    with pytest.raises(ConfigError, match="REQUESTS_RETENTION_MS"):
        retention.checked(settings)


def test_a_margin_under_an_hour_is_refused() -> None:
    with pytest.raises(ValueError):
        RetentionSettings(dedupe_margin_s=0)


def test_time_windows_keep_about_thirty_sstables_of_whole_hours() -> None:
    assert retention.time_windows(30 * 24 * 3600)["compaction_window_size"] == "24"
    assert retention.time_windows(90 * 24 * 3600)["compaction_window_size"] == "72"
    assert retention.time_windows(600)["compaction_window_size"] == "1"


def test_the_plan_covers_every_table_that_grows_with_traffic_and_no_other() -> None:
    created = set()
    for path in MIGRATIONS_DIR.glob("*.cql"):
        created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text()))
    planned = {t.table: t for t in retention.plan(RetentionSettings())}
    assert set(planned) <= created
    assert set(planned) == {
        "messages",
        "deliveries",
        "message_timeline",
        "message_tenants",
        "recipient_timeline",
    }
    assert planned["messages"].ttl_s == 7 * 24 * 3600
    # The ledger holds the timeline's DELIVERED entries: it lasts as long as the timeline.
    assert planned["deliveries"].ttl_s == planned["message_timeline"].ttl_s == 30 * 24 * 3600
    longer_dedupe = retention.plan(RetentionSettings(dedupe_ttl_s=40 * 24 * 3600))
    assert {t.table: t.ttl_s for t in longer_dedupe}["deliveries"] == 40 * 24 * 3600
    assert planned["message_timeline"].compaction["class"] == "TimeWindowCompactionStrategy"
    assert planned["deliveries"].compaction["class"] == "LeveledCompactionStrategy"


class FakeSession:
    def __init__(self, tables: list[Any]) -> None:
        self.tables = tables
        self.statements: list[str] = []

    def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.statements.append(cql)
        return self.tables if cql.startswith("SELECT") else []


def _current(table: str, ttl: int, grace: int, compaction: dict[str, str]) -> Any:
    return SimpleNamespace(
        table_name=table, default_time_to_live=ttl, gc_grace_seconds=grace, compaction=compaction
    )


def test_apply_alters_only_the_tables_that_differ() -> None:
    wanted = (
        TableRetention(
            table="messages", ttl_s=604800, gc_grace_s=10800, compaction=retention.leveled()
        ),
        TableRetention(
            table="deliveries", ttl_s=604800, gc_grace_s=10800, compaction=retention.leveled()
        ),
        TableRetention(
            table="message_timeline",
            ttl_s=2592000,
            gc_grace_s=10800,
            compaction=retention.time_windows(2592000),
        ),
    )
    session = FakeSession(
        [
            # As Cassandra shows it: the class by its full name, and the strategy's defaults.
            _current(
                "messages",
                604800,
                10800,
                {
                    "class": "org.apache.cassandra.db.compaction.LeveledCompactionStrategy",
                    "max_threshold": "32",
                    "min_threshold": "4",
                },
            ),
            _current("deliveries", 0, 864000, {"class": "SizeTieredCompactionStrategy"}),
            # message_timeline: not created yet (a keyspace migrated part of the way).
        ]
    )
    changed = retention.apply(session, "ks", wanted)  # type: ignore[arg-type]
    assert changed == ["deliveries"]
    assert session.statements[-1] == (
        "ALTER TABLE ks.deliveries WITH default_time_to_live = 604800"
        " AND gc_grace_seconds = 10800 AND compaction = {'class': 'LeveledCompactionStrategy'}"
    )


def test_migration_5_moves_the_timeline_with_a_python_step() -> None:
    by_version = {m.version: m for m in load_migrations()}
    assert by_version[5].step is not None
    assert all(m.step is None for v, m in by_version.items() if v != 5)


def test_a_step_without_its_cql_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.cql").write_text("CREATE TABLE IF NOT EXISTS a (k int PRIMARY KEY);")

    def step(context: StepContext) -> str:
        return ""

    assert load_migrations(tmp_path, {1: step})[0].step is step
    with pytest.raises(ConfigError, match=r"\[2\]"):
        load_migrations(tmp_path, {1: step, 2: step})


def test_a_lapsing_row_expires_with_it_a_permanent_one_never() -> None:
    from services.common.cassandra.retention import ttl_until

    assert ttl_until(None, 1_000) == 0
    assert ttl_until(1_000 + 86_400_000, 1_000) == 86_400
    assert ttl_until(1_000 + 1_500, 1_000) == 2  # rounded up: never before it lapses
    assert ttl_until(500, 1_000) == 1  # lapsed already: gone at once, never kept for good
