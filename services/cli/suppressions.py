"""mailstream suppressions list|add|remove"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click

from services.cli.keyspace import keyspace_session
from services.cli.output import table
from services.common.reasons import Reason
from services.common.suppressions import Suppress, SuppressionTable, epoch_ms


def _address(value: str) -> str:
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise click.BadParameter(f"not an email address: {value!r}", param_hint="ADDRESS")
    return address


def _fmt(at_ms: int | None) -> str:
    if at_ms is None:
        return "never"
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group(help="A tenant's suppression list: addresses mailstream will not send to.")
def suppressions() -> None:
    pass


_tenant = click.option("--tenant", required=True, help="The tenant whose list this is.")


@suppressions.command("list", help="Show the tenant's suppressed addresses.")
@_tenant
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
def list_(tenant: str, limit: int) -> None:
    with suppression_table() as listing:
        rows = asyncio.run(listing.listed(tenant, limit=limit))
    if not rows:
        click.echo(f"no suppressions for tenant {tenant}")
        return
    now = epoch_ms()
    shown = [
        (
            r.address,
            r.reason,
            _fmt(r.created_at),
            _fmt(r.expires_at),
            "active" if r.active(now) else "expired",
        )
        for r in rows
    ]
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
    now = epoch_ms()
    expires = now + int(expires_in * 86_400_000) if expires_in is not None else None
    entry = Suppress(
        tenant_id=tenant, address=normalized, reason=reason, created_at=now, expires_at=expires
    )
    with suppression_table() as listing:
        asyncio.run(listing.put(entry))
    click.echo(f"suppressed {normalized} for {tenant} (reason {reason}, expires {_fmt(expires)})")


@suppressions.command(help="Take an address off the tenant's suppression list.")
@_tenant
@click.argument("address")
def remove(tenant: str, address: str) -> None:
    normalized = _address(address)
    with suppression_table() as listing:
        if asyncio.run(listing.get(tenant, normalized)) is None:
            raise click.ClickException(f"{normalized} is not suppressed for tenant {tenant}")
        asyncio.run(listing.remove(tenant, normalized))
    click.echo(f"removed {normalized} from the suppression list of {tenant}")


@contextmanager
def suppression_table() -> Iterator[SuppressionTable]:
    with keyspace_session() as session:
        yield SuppressionTable(session=session)
