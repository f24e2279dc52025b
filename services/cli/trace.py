"""mailstream trace MESSAGE_ID | --recipient ADDRESS"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click
from cassandra.cluster import Session

from services.cli.output import table
from services.cli.settings import load
from services.common.cassandra.session import connect


def _fmt(ts: dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ts else ""


def timeline(session: Session, message_id: str) -> list[Any]:
    return list(
        session.execute(
            "SELECT occurred_at, tenant_id, priority, recipient, type, attempt, reason, smtp_code,"
            " smtp_text, mx_host, next_attempt_at FROM message_events WHERE message_id = %s",
            (message_id,),
        )
    )


@click.command(help="Show the whole timeline of a message, or recent messages to an address.")
@click.argument("message_id", required=False)
@click.option("--recipient", help="Show recent messages to this address instead.")
@click.option("--wait-for", "wait_for", help="Wait until an event of this type appears.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait-for.")
def trace(
    message_id: str | None, recipient: str | None, wait_for: str | None, timeout: float
) -> None:
    if bool(message_id) == bool(recipient):
        raise click.UsageError("give either MESSAGE_ID or --recipient ADDRESS")
    settings = load().cassandra
    cluster, session = connect(settings, keyspace=settings.keyspace)
    try:
        if recipient:
            rows = session.execute(
                "SELECT occurred_at, message_id, tenant_id, type FROM recipient_messages"
                " WHERE recipient = %s LIMIT 100",
                (recipient.lower(),),
            )
            table(
                ["OCCURRED", "TYPE", "TENANT", "MESSAGE"],
                [(_fmt(r.occurred_at), r.type, r.tenant_id, r.message_id) for r in rows],
            )
            return
        assert message_id is not None
        deadline = time.monotonic() + timeout
        rows = timeline(session, message_id)
        while wait_for and not any(r.type == wait_for.upper() for r in rows):
            if time.monotonic() > deadline:
                _print(rows)
                raise click.ClickException(f"no {wait_for.upper()} event within {timeout:.0f}s")
            time.sleep(0.2)
            rows = timeline(session, message_id)
        if not rows:
            raise click.ClickException(f"no events for message {message_id}")
        _print(rows)
    finally:
        cluster.shutdown()


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
        shown.append((_fmt(r.occurred_at), r.type, r.priority, r.recipient, r.attempt, detail))
    table(["OCCURRED", "TYPE", "PRIORITY", "RECIPIENT", "ATTEMPT", "DETAIL"], shown)
