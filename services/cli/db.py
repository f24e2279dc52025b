"""mailstream db migrate|status"""

from __future__ import annotations

import click

from services.cli.output import table
from services.cli.settings import load
from services.common.cassandra.migrations import migrate as apply_migrations
from services.common.cassandra.migrations import status as migration_status
from services.common.cassandra.retention import checked
from services.common.cassandra.session import connect


@click.group(help="Cassandra schema.")
def db() -> None:
    pass


@db.command(
    help="Create the keyspace, apply pending migrations, and set the tables' TTLs and"
    " compaction from MAILSTREAM_RETENTION__*."
)
def migrate() -> None:
    common = load()
    retention = checked(common)  # before anything is changed
    settings = common.cassandra
    cluster, session = connect(settings)
    try:
        done = apply_migrations(session, settings, retention=retention)
    finally:
        cluster.shutdown()
    click.echo(
        f"keyspace {settings.keyspace}: "
        + (f"applied {', '.join(done.applied)}" if done.applied else "up to date")
    )
    if done.retention_changed:
        click.echo(f"retention set on {', '.join(done.retention_changed)}")


@db.command(help="List migrations and whether each is applied.")
def status() -> None:
    settings = load().cassandra
    cluster, session = connect(settings)
    try:
        rows = migration_status(session, settings)
    finally:
        cluster.shutdown()
    table(["STATE", "MIGRATION"], [("applied" if d else "pending", m.name) for m, d in rows])
