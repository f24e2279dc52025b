"""mailstream db migrate|status"""

from __future__ import annotations

import click

from services.cli.output import table
from services.cli.settings import load
from services.common.cassandra.migrations import migrate as apply_migrations
from services.common.cassandra.migrations import status as migration_status
from services.common.cassandra.session import connect


@click.group(help="Cassandra schema.")
def db() -> None:
    pass


@db.command(help="Create the keyspace and apply pending CQL migrations.")
def migrate() -> None:
    settings = load().cassandra
    cluster, session = connect(settings)
    try:
        applied = apply_migrations(session, settings)
    finally:
        cluster.shutdown()
    click.echo(
        f"keyspace {settings.keyspace}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
    )


@db.command(help="List migrations and whether each is applied.")
def status() -> None:
    settings = load().cassandra
    cluster, session = connect(settings)
    try:
        rows = migration_status(session, settings)
    finally:
        cluster.shutdown()
    table(["STATE", "MIGRATION"], [("applied" if d else "pending", m.name) for m, d in rows])
