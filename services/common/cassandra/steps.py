"""Python steps of migrations: rows a CQL statement cannot move, copied by code that runs right
after the CQL of the same version (migrations.py; STEPS names them by version)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement, SimpleStatement

from services.common.cassandra.retention import RetentionSettings
from services.common.cassandra.session import TRANSIENT, ms_from_cql

PAGE = 1000
CONCURRENCY = 32
ATTEMPTS = 6  # waits of 2, 4, ... 32 s between them: about a minute in all
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class StepContext:
    session: Session
    keyspace: str
    retention: RetentionSettings


# A step returns a one-line summary of what it did, printed by `mailstream db migrate`.
# It must be safe to run again: a migration interrupted midway is applied again whole.
Step = Callable[[StepContext], str]


@dataclass(frozen=True, kw_only=True)
class Copied:
    rows: int = 0
    expired: int = 0  # older than the target's TTL: they would expire at once
    keyless: int = 0  # a key column of the target is null: no row can hold them


def _columns(ctx: StepContext, table: str) -> dict[str, str]:
    """Column name -> kind (partition_key, clustering, regular), in schema order."""
    rows = ctx.session.execute(
        "SELECT column_name, kind, position FROM system_schema.columns"
        " WHERE keyspace_name = %s AND table_name = %s",
        (ctx.keyspace, table),
    )
    ordered = sorted(rows, key=lambda r: (r.kind != "partition_key", r.kind, r.position))
    return {r.column_name: r.kind for r in ordered}


def _retried(call: Callable[[], T]) -> T:
    """A step runs beside live traffic: a statement that timed out is tried again."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except TRANSIENT:
            if attempt == ATTEMPTS:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def _write_all(session: Session, insert: PreparedStatement, params: list[tuple[Any, ...]]) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        results = execute_concurrent_with_args(
            session, insert, params, concurrency=CONCURRENCY, raise_on_first_error=False
        )
        failed = [
            (p, r.result_or_exc) for p, r in zip(params, results, strict=True) if not r.success
        ]
        if not failed:
            return
        error = failed[0][1]
        if attempt == ATTEMPTS or not isinstance(error, TRANSIENT):
            raise error
        time.sleep(2**attempt)
        params = [p for p, _ in failed]


def copy_rows(ctx: StepContext, *, source: str, target: str, ttl_s: int) -> Copied:
    """Upserts every row of source into target, by the columns target has. Each copy expires
    ttl_s after its occurred_at and is written with that time as its write timestamp, so a
    copy never outlives, nor overwrites, what the services wrote since."""
    session = ctx.session
    wanted = _columns(ctx, target)
    have = _columns(ctx, source)
    columns = [c for c in wanted if c in have]
    keys = [i for i, c in enumerate(columns) if wanted[c] != "regular"]
    insert = session.prepare(
        f"INSERT INTO {target} ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)}) USING TTL ? AND TIMESTAMP ?"
    )
    select = SimpleStatement(
        f"SELECT {', '.join(columns)}, occurred_at FROM {source}", fetch_size=PAGE
    )
    now_ms = int(time.time() * 1000)
    copied = expired = keyless = 0
    paging_state = None
    while True:
        # One page at a time, so a page that timed out is asked for again from where it was.
        page = _retried(functools.partial(session.execute, select, paging_state=paging_state))
        params = []
        for row in page.current_rows:
            values = tuple(row)
            at_ms = ms_from_cql(values[-1])  # a clustering column of the sources: never null
            ttl = ttl_s - (now_ms - at_ms) // 1000
            if any(values[i] is None for i in keys):
                keyless += 1
            elif ttl < 1:
                expired += 1
            else:
                params.append((*values[:-1], ttl, at_ms * 1000))
        _write_all(session, insert, params)
        copied += len(params)
        paging_state = page.paging_state
        if paging_state is None:
            return Copied(rows=copied, expired=expired, keyless=keyless)


def copy_timeline_by_tenant(ctx: StepContext) -> str:
    """0005: the timeline keyed by message_id or address alone, into the tenant-keyed tables."""
    ttl = ctx.retention.timeline_ttl_s
    events = copy_rows(ctx, source="message_events", target="message_timeline", ttl_s=ttl)
    copy_rows(ctx, source="message_events", target="message_tenants", ttl_s=ttl)
    by_recipient = copy_rows(
        ctx, source="recipient_messages", target="recipient_timeline", ttl_s=ttl
    )
    left = events.expired + events.keyless + by_recipient.expired + by_recipient.keyless
    return (
        f"copied {events.rows} events and {by_recipient.rows} by-recipient rows;"
        f" {left} past the timeline TTL or without a tenant left behind"
    )


STEPS: Mapping[int, Step] = {5: copy_timeline_by_tenant}
