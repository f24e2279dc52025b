"""mailstream suppressions list|add|remove"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click

from services.cli.keyspace import keyspace_session
from services.cli.output import table
from services.common.cassandra.retention import ttl_until
from services.common.cassandra.session import ms_from_cql
from services.common.reasons import Reason


def _address(value: str) -> str:
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise click.BadParameter(f"not an email address: {value!r}", param_hint="ADDRESS")
    return address


def _fmt(ts: dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts else "never"


@click.group(help="A tenant's suppression list: addresses mailstream will not send to.")
def suppressions() -> None:
    pass


_tenant = click.option("--tenant", required=True, help="The tenant whose list this is.")


@suppressions.command("list", help="Show the tenant's suppressed addresses.")
@_tenant
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
def list_(tenant: str, limit: int) -> None:
    with keyspace_session() as session:
        rows: list[Any] = list(
            session.execute(
                "SELECT address, reason, created_at, expires_at FROM suppressions"
                " WHERE tenant_id = %s LIMIT %s",
                (tenant, limit),
            )
        )
    if not rows:
        click.echo(f"no suppressions for tenant {tenant}")
        return
    now_ms = time.time_ns() // 1_000_000
    shown = []
    for r in rows:
        lapsed = r.expires_at is not None and ms_from_cql(r.expires_at) <= now_ms
        state = "expired" if lapsed else "active"
        shown.append((r.address, r.reason, _fmt(r.created_at), _fmt(r.expires_at), state))
    table(["ADDRESS", "REASON", "CREATED", "EXPIRES", "STATE"], shown)


@suppressions.command(help="Suppress an address for the tenant (replaces any entry).")
@_tenant
@click.argument("address")
@click.option(
    "--reason", default=Reason.MANUAL.value, show_default=True, help="Why, a snake_case code."
)
@click.option(
    "--expires-in",
    "expires_in",
    type=click.FloatRange(min=0, min_open=True),
    help="Days until the suppression lapses; without it, it never does.",
)
def add(tenant: str, address: str, reason: str, expires_in: float | None) -> None:
    normalized = _address(address)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    expires = now + dt.timedelta(days=expires_in) if expires_in is not None else None
    now_ms = time.time_ns() // 1_000_000
    lapses = now_ms + int(expires_in * 86_400_000) if expires_in is not None else None
    ttl = ttl_until(lapses, now_ms)
    with keyspace_session() as session:
        session.execute(
            "INSERT INTO suppressions (tenant_id, address, reason, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) USING TTL %s",
            (tenant, normalized, reason, now, expires, ttl),
        )
    click.echo(f"suppressed {normalized} for {tenant} (reason {reason}, expires {_fmt(expires)})")


@suppressions.command(help="Take an address off the tenant's suppression list.")
@_tenant
@click.argument("address")
def remove(tenant: str, address: str) -> None:
    normalized = _address(address)
    with keyspace_session() as session:
        found = list(
            session.execute(
                "SELECT address FROM suppressions WHERE tenant_id = %s AND address = %s",
                (tenant, normalized),
            )
        )
        if not found:
            raise click.ClickException(f"{normalized} is not suppressed for tenant {tenant}")
        session.execute(
            "DELETE FROM suppressions WHERE tenant_id = %s AND address = %s",
            (tenant, normalized),
        )
        # Soft bounces counted so far would otherwise suppress it again at the next one.
        session.execute(
            "DELETE FROM soft_bounces WHERE tenant_id = %s AND address = %s",
            (tenant, normalized),
        )
    click.echo(f"removed {normalized} from the suppression list of {tenant}")
