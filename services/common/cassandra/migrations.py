"""Versioned migrations: migrations/NNNN_name.cql, each applied once, in order, with an optional
Python step of the same version (steps.py) for rows CQL cannot move; then table retention."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cassandra.cluster import Session

from services.common.cassandra import retention as table_retention
from services.common.cassandra.retention import RetentionSettings
from services.common.cassandra.steps import STEPS, Step, StepContext
from services.common.config import CassandraSettings
from services.common.errors import ConfigError, TransientError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.cql$")
# How long a migration waits for every node to hold the schema it just changed. The driver
# waits 10 s after each DDL statement and then goes on regardless; on a busy ring a node can
# take longer, and a statement sent to it then fails ("table ... does not exist").
SCHEMA_AGREEMENT_WAIT_S = 120.0


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]
    # Run after the statements, before the version is recorded as applied.
    step: Step | None = None


@dataclass(frozen=True, kw_only=True)
class Migrated:
    applied: list[str] = field(default_factory=list)  # names, with what each step did
    retention_changed: list[str] = field(default_factory=list)  # tables altered


def load_migrations(
    folder: Path = MIGRATIONS_DIR, steps: Mapping[int, Step] = STEPS
) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.cql")):
        match = _NAME.match(path.name)
        if not match:
            raise ConfigError(f"migration file name not NNNN_name.cql: {path.name}")
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.strip().startswith("--")
        )
        statements = [s.strip() for s in text.split(";") if s.strip()]
        version = int(match.group(1))
        migrations.append(Migration(version, path.stem, statements, steps.get(version)))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migrations share a version number")
    if orphans := set(steps) - set(versions):
        raise ConfigError(f"migration steps without a CQL file: {sorted(orphans)}")
    return migrations


def applied_versions(session: Session, keyspace: str) -> set[int]:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return {row.version for row in rows}


def await_schema_agreement(session: Session, *, wait_s: float = SCHEMA_AGREEMENT_WAIT_S) -> None:
    """Returns once every node reports the same schema version; TransientError after wait_s."""
    deadline = time.monotonic() + wait_s
    control = session.cluster.control_connection
    while True:
        left = deadline - time.monotonic()
        if control.wait_for_schema_agreement(wait_time=max(1.0, min(10.0, left))):
            return
        if time.monotonic() >= deadline:
            raise TransientError(
                f"the Cassandra nodes did not agree on the schema within {wait_s:.0f}s: "
                "is every node up? ('nodetool describecluster' lists their schema versions)"
            )


def migrate(
    session: Session,
    settings: CassandraSettings,
    *,
    retention: RetentionSettings | None = None,
    migrations: Sequence[Migration] | None = None,
) -> Migrated:
    """Creates the keyspace if needed, applies pending migrations, then brings the tables that
    grow with traffic to the retention settings (checked by retention.checked beforehand)."""
    ks = settings.keyspace
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", ks):
        raise ConfigError(f"invalid keyspace name: {ks!r}")
    kept = retention or RetentionSettings()
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {settings.replication}")
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.schema_migrations "
        "(version int PRIMARY KEY, name text, applied_at timestamp)"
    )
    await_schema_agreement(session)
    done = applied_versions(session, ks)
    applied = []
    for migration in load_migrations() if migrations is None else migrations:
        if migration.version in done:
            continue
        session.set_keyspace(ks)
        for statement in migration.statements:
            session.execute(statement)
        await_schema_agreement(session)
        context = StepContext(session=session, keyspace=ks, retention=kept)
        summary = migration.step(context) if migration.step else ""
        session.execute(
            f"INSERT INTO {ks}.schema_migrations (version, name, applied_at) "
            "VALUES (%s, %s, toTimestamp(now()))",
            (migration.version, migration.name),
        )
        applied.append(f"{migration.name} ({summary})" if summary else migration.name)
    changed = table_retention.apply(session, ks, table_retention.plan(kept))
    return Migrated(applied=applied, retention_changed=changed)


def status(session: Session, settings: CassandraSettings) -> list[tuple[Migration, bool]]:
    try:
        done = applied_versions(session, settings.keyspace)
    except Exception:
        done = set()
    return [(m, m.version in done) for m in load_migrations()]
