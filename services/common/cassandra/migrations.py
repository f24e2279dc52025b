"""Versioned CQL migrations: migrations/NNNN_name.cql, each applied once, in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

from services.common.config import CassandraSettings
from services.common.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.cql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.cql")):
        match = _NAME.match(path.name)
        if not match:
            raise ConfigError(f"migration file name not NNNN_name.cql: {path.name}")
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.strip().startswith("--")
        )
        statements = [s.strip() for s in text.split(";") if s.strip()]
        migrations.append(Migration(int(match.group(1)), path.stem, statements))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migrations share a version number")
    return migrations


def applied_versions(session: Session, keyspace: str) -> set[int]:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return {row.version for row in rows}


def migrate(session: Session, settings: CassandraSettings) -> list[str]:
    """Creates the keyspace if needed and applies pending migrations; returns their names."""
    ks = settings.keyspace
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", ks):
        raise ConfigError(f"invalid keyspace name: {ks!r}")
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {settings.replication}")
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.schema_migrations "
        "(version int PRIMARY KEY, name text, applied_at timestamp)"
    )
    done = applied_versions(session, ks)
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        session.set_keyspace(ks)
        for statement in migration.statements:
            session.execute(statement)
        session.execute(
            f"INSERT INTO {ks}.schema_migrations (version, name, applied_at) "
            "VALUES (%s, %s, toTimestamp(now()))",
            (migration.version, migration.name),
        )
        applied.append(migration.name)
    return applied


def status(session: Session, settings: CassandraSettings) -> list[tuple[Migration, bool]]:
    try:
        done = applied_versions(session, settings.keyspace)
    except Exception:
        done = set()
    return [(m, m.version in done) for m in load_migrations()]
