"""How long each table that grows with traffic keeps its rows, and how it compacts.

`mailstream db migrate` brings every table named here to these options (ALTER TABLE where
they differ), so a changed setting takes effect at the next migrate; rows already written
keep the TTL they were written with. Tables that do not grow with traffic (tenants,
templates) keep rows until they are changed; suppressions that never lapse are kept by design;
soft_bounces rows carry the suppression counting window as their TTL (event_publisher).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import ConfigError

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from services.common.config import CommonSettings

DAY = 24 * 3600
MAX_TTL_S = 20 * 365 * DAY  # Cassandra refuses a longer TTL
# A TWCS table is kept in about this many time windows: few enough SSTables to read, and an
# expired window is dropped whole, without compacting it.
TWCS_WINDOWS = 30
DEDUPE_TABLES = ("messages", "deliveries")
TIMELINE_TABLES = ("message_timeline", "recipient_timeline", "message_tenants")


class RetentionSettings(BaseModel):
    """MAILSTREAM_RETENTION__*: TTLs in seconds."""

    model_config = ConfigDict(frozen=True)

    # Idempotency claims (messages) and the delivery ledger (deliveries): a message_id is
    # deduplicated, and a delivered recipient never sent again, this long after the row is
    # written. Must cover the longest a request or a task can come back (max ages, requests
    # topic retention) plus dedupe_margin_s, or a late redelivery would be sent twice.
    dedupe_ttl_s: int = Field(default=7 * DAY, gt=0, le=MAX_TTL_S)
    # The least the dedupe window must exceed that: the last retry tier, an outage, a replay.
    dedupe_margin_s: int = Field(default=1 * DAY, ge=3600)
    # The timeline behind `mailstream trace` (events, by-recipient index, message id lookup);
    # the delivery ledger, which holds its DELIVERED entries, is kept as long if this is longer.
    timeline_ttl_s: int = Field(default=30 * DAY, gt=0, le=MAX_TTL_S)
    # gc_grace_seconds of the tables above: they are written only with a TTL and never
    # deleted, so nothing a repair must propagate is lost by purging expired rows sooner than
    # Cassandra's 10-day default. Hints for them are kept at most this long (3 h, as
    # max_hint_window; 0 would turn hints off), and so is each claim's Paxos state.
    expired_gc_grace_s: int = Field(default=3 * 3600, ge=3600)


@dataclass(frozen=True, kw_only=True)
class TableRetention:
    table: str
    ttl_s: int
    gc_grace_s: int
    compaction: Mapping[str, str]


def leveled() -> dict[str, str]:
    return {"class": "LeveledCompactionStrategy"}


def time_windows(ttl_s: int) -> dict[str, str]:
    hours = max(1, math.ceil(ttl_s / 3600 / TWCS_WINDOWS))
    return {
        "class": "TimeWindowCompactionStrategy",
        "compaction_window_unit": "HOURS",
        "compaction_window_size": str(hours),
    }


def check_dedupe(settings: RetentionSettings, comeback_s: Mapping[str, int]) -> None:
    """comeback_s: how long after acceptance a request or task can still arrive, by setting."""
    if not comeback_s:
        return
    name, longest = max(comeback_s.items(), key=lambda item: item[1])
    needed = longest + settings.dedupe_margin_s
    if settings.dedupe_ttl_s < needed:
        raise ConfigError(
            f"MAILSTREAM_RETENTION__DEDUPE_TTL_S={settings.dedupe_ttl_s} is shorter than"
            f" {name} ({longest} s) plus MAILSTREAM_RETENTION__DEDUPE_MARGIN_S"
            f" ({settings.dedupe_margin_s} s): a message redelivered after its claim or"
            f" ledger row expired would be sent again. Set it to at least {needed}."
        )


def plan(settings: RetentionSettings) -> tuple[TableRetention, ...]:
    """The options of every table that grows with traffic.

    Claims and the ledger are read on the hot path (ingest's LWT reads the claim; the sender
    reads the ledger before each send), mostly for keys that are absent or recent: leveled
    compaction keeps such a point read to about one SSTable per level, and compacts steadily,
    so expired rows leave soon after their TTL. The timeline is written once per event and
    read rarely, by partition, and all of it expires at the same age: time windows let a
    window of expired SSTables be dropped whole, with no compaction at all. The ledger is
    also the timeline's record of each delivery (services/common/timeline.py): it is kept
    as long as the longer of the two.
    """
    grace = settings.expired_gc_grace_s
    dedupe, ttl = settings.dedupe_ttl_s, settings.timeline_ttl_s
    return (
        *(
            TableRetention(
                table=t,
                ttl_s=max(dedupe, ttl) if t == "deliveries" else dedupe,
                gc_grace_s=grace,
                compaction=leveled(),
            )
            for t in DEDUPE_TABLES
        ),
        *(
            TableRetention(table=t, ttl_s=ttl, gc_grace_s=grace, compaction=time_windows(ttl))
            for t in TIMELINE_TABLES
        ),
    )


def checked(settings: CommonSettings) -> RetentionSettings:
    """The retention settings, refused if the dedupe window is too short for the others."""
    check_dedupe(
        settings.retention,
        {
            "MAILSTREAM_MAX_AGE_CRITICAL_S": settings.max_age_critical_s,
            "MAILSTREAM_MAX_AGE_TRANSACTIONAL_S": settings.max_age_transactional_s,
            "MAILSTREAM_MAX_AGE_BULK_S": settings.max_age_bulk_s,
            "MAILSTREAM_KAFKA__REQUESTS_RETENTION_MS / 1000": (
                settings.kafka.requests_retention_ms // 1000
            ),
        },
    )
    return settings.retention


def _differs(wanted: TableRetention, current: Any) -> bool:
    compaction = dict(current.compaction)
    # Cassandra stores the class by its full name, and adds the strategy's own defaults.
    same_class = compaction.get("class", "").rsplit(".", 1)[-1] == wanted.compaction["class"]
    same_options = all(compaction.get(k) == v for k, v in wanted.compaction.items() if k != "class")
    return not (
        current.default_time_to_live == wanted.ttl_s
        and current.gc_grace_seconds == wanted.gc_grace_s
        and same_class
        and same_options
    )


def alter_statement(keyspace: str, wanted: TableRetention) -> str:
    options = ", ".join(f"'{k}': '{v}'" for k, v in wanted.compaction.items())
    return (
        f"ALTER TABLE {keyspace}.{wanted.table} WITH default_time_to_live = {wanted.ttl_s}"
        f" AND gc_grace_seconds = {wanted.gc_grace_s} AND compaction = {{{options}}}"
    )


def apply(session: Session, keyspace: str, tables: tuple[TableRetention, ...]) -> list[str]:
    """ALTERs the tables whose options differ from the plan; returns their names. A table not
    created yet (a keyspace migrated part of the way) is left for the migrate that creates it."""
    rows = session.execute(
        "SELECT table_name, default_time_to_live, gc_grace_seconds, compaction"
        " FROM system_schema.tables WHERE keyspace_name = %s",
        (keyspace,),
    )
    current = {row.table_name: row for row in rows}
    changed = []
    for wanted in tables:
        if wanted.table in current and _differs(wanted, current[wanted.table]):
            session.execute(alter_statement(keyspace, wanted))
            changed.append(wanted.table)
    return changed


def ttl_until(expires_at_ms: int | None, now_ms: int) -> int:
    """The TTL of a row that lapses at expires_at (a suppression with an expiry), so it is
    gone from disk when it no longer counts; 0, no TTL, for one that never lapses."""
    if expires_at_ms is None:
        return 0
    return max(1, -(-(expires_at_ms - now_ms) // 1000))
