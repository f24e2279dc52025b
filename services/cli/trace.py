"""mailstream trace MESSAGE_ID [--tenant T] | --recipient ADDRESS [--tenant T]"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import click

from services.cli.keyspace import keyspace_session
from services.cli.output import table
from services.common.timeline import Timeline


def _fmt(ts: dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ts else ""


def _one_tenant(timeline: Timeline, message_id: str) -> str | None:
    """The tenant of a message id given without --tenant: None while no tenant has it."""
    tenants = asyncio.run(timeline.tenants_of(message_id))
    if len(tenants) > 1:
        raise click.UsageError(
            f"message id {message_id} is used by tenants {', '.join(map(repr, tenants))}:"
            " give --tenant"
        )
    return tenants[0] if tenants else None


@click.command(
    help="Show the whole timeline of a message, or recent messages to an address. A message id"
    " is a tenant's own: without --tenant, the one tenant that used it is shown, and if several"
    " did they are named."
)
@click.argument("message_id", required=False)
@click.option("--tenant", help="The tenant of the message, or whose mail to --recipient to show.")
@click.option("--recipient", help="Show recent messages to this address instead.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--wait-for", "wait_for", help="Wait until an event of this type appears.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait-for.")
def trace(
    message_id: str | None,
    tenant: str | None,
    recipient: str | None,
    limit: int,
    wait_for: str | None,
    timeout: float,
) -> None:
    if bool(message_id) == bool(recipient):
        raise click.UsageError("give either MESSAGE_ID or --recipient ADDRESS")
    with keyspace_session() as session:
        timeline = Timeline(session=session)
        if recipient:
            rows = asyncio.run(timeline.by_recipient(recipient, tenant, limit))
            table(
                ["OCCURRED", "TYPE", "TENANT", "MESSAGE"],
                [(_fmt(r.occurred_at), r.type, r.tenant_id, r.message_id) for r in rows],
            )
            return
        assert message_id is not None
        _trace(timeline, message_id, tenant, wait_for, timeout)


def _trace(
    timeline: Timeline, message_id: str, tenant: str | None, wait_for: str | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        # Looked up again while waiting: the message may not have reached the timeline yet.
        chosen = tenant if tenant is not None else _one_tenant(timeline, message_id)
        rows = asyncio.run(timeline.events(chosen, message_id)) if chosen is not None else []
        if not wait_for or any(r.type == wait_for.upper() for r in rows):
            break
        if time.monotonic() > deadline:
            _print(rows)
            raise click.ClickException(f"no {wait_for.upper()} event within {timeout:.0f}s")
        time.sleep(0.2)
    if not rows:
        of = f" of tenant {tenant!r}" if tenant is not None else ""
        others = [t for t in asyncio.run(timeline.tenants_of(message_id)) if t != tenant]
        hint = f" (tenants with that message id: {', '.join(map(repr, others))})" if others else ""
        raise click.ClickException(f"no events for message {message_id}{of}{hint}")
    _print(rows)


def _print(rows: list[Any]) -> None:
    shown = []
    for r in rows:
        smtp = f"{r.smtp_code} {r.smtp_text or ''}".strip() if r.smtp_code else ""
        detail = " ".join(
            x
            for x in (
                f"reason={r.reason}" if r.reason else "",
                f"mx={r.mx_host}" if r.mx_host else "",
                f"smtp='{smtp[:80]}'" if smtp else "",
                f"next={_fmt(r.next_attempt_at)}" if r.next_attempt_at else "",
            )
            if x
        )
        shown.append(
            (_fmt(r.occurred_at), r.type, r.tenant_id, r.priority, r.recipient, r.attempt, detail)
        )
    table(["OCCURRED", "TYPE", "TENANT", "PRIORITY", "RECIPIENT", "ATTEMPT", "DETAIL"], shown)
