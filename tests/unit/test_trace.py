"""`mailstream trace` reads one tenant's slice of the timeline, or says whose the id is."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

import click
import pytest

from services.cli import trace
from services.common.cassandra.session import named_rows
from services.common.timeline import _EVENT_COLUMNS, Timeline


class Session:
    """Answers the trace queries from rows of recipient_timeline and message_tenants."""

    def __init__(
        self, *, by_recipient: tuple[Any, ...] = (), tenants: tuple[str, ...] = ()
    ) -> None:
        self.by_recipient = list(by_recipient)
        self.tenants = list(tenants)
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, cql: str, params: tuple[Any, ...]) -> list[Any]:
        self.queries.append((cql, params))
        if "FROM message_tenants" in cql:
            return [SimpleNamespace(tenant_id=t) for t in self.tenants]
        if "GROUP BY" in cql:
            return [SimpleNamespace(tenant_id=t) for t in {r.tenant_id for r in self.by_recipient}]
        _, tenant, limit = params
        rows = [r for r in self.by_recipient if r.tenant_id == tenant]
        return sorted(rows, key=lambda r: r.occurred_at, reverse=True)[:limit]


def _timeline(session: Session) -> Timeline:
    return Timeline(session=session)  # type: ignore[arg-type]


def _row(tenant: str, minute: int) -> Any:
    return SimpleNamespace(
        tenant_id=tenant,
        occurred_at=dt.datetime(2026, 12, 1, 12, minute),
        message_id=f"m{minute}",
        type="DELIVERED",
    )


def test_by_recipient_merges_the_tenants_newest_first() -> None:
    rows = [_row("acme", 1), _row("other", 2), _row("acme", 3), _row("other", 4)]
    session = Session(by_recipient=tuple(rows))
    found = asyncio.run(_timeline(session).by_recipient(" Bob@X.test ", None, 3))
    assert [(r.tenant_id, r.occurred_at.minute) for r in found] == [
        ("other", 4),
        ("acme", 3),
        ("other", 2),
    ]
    assert all(params[0] == "bob@x.test" for _, params in session.queries)


def test_by_recipient_of_one_tenant_reads_only_its_slice() -> None:
    session = Session(by_recipient=(_row("acme", 1), _row("other", 2)))
    found = asyncio.run(_timeline(session).by_recipient("bob@x.test", "other", 100))
    assert [r.tenant_id for r in found] == ["other"]
    assert len(session.queries) == 1 and session.queries[0][1][1] == "other"


def test_a_message_id_of_several_tenants_asks_for_one() -> None:
    session = Session(tenants=("acme", "other"))
    with pytest.raises(click.UsageError, match=r"'acme', 'other'.*--tenant"):
        trace._one_tenant(_timeline(session), "m1")
    assert trace._one_tenant(_timeline(Session(tenants=("acme",))), "m1") == "acme"
    assert trace._one_tenant(_timeline(Session()), "m1") is None


class MessageSession:
    """Answers a message's timeline rows and its deliveries from the ledger."""

    def __init__(self, rows: list[tuple[Any, ...]], deliveries: list[Any]) -> None:
        self.rows, self.deliveries = rows, deliveries

    async def execute(self, cql: str, params: tuple[Any, ...]) -> list[Any]:
        if "FROM message_timeline" in cql:
            return named_rows(_EVENT_COLUMNS, self.rows)
        assert "FROM deliveries" in cql and params == ("acme", "m1")
        return self.deliveries


def _at(second: int) -> dt.datetime:
    return dt.datetime(2026, 12, 1, 12, 0, second)


def _delivery(recipient: str, second: int) -> Any:
    return SimpleNamespace(
        recipient=recipient, delivered_at=_at(second), attempt=2, mx_host="mx.example.org",
        smtp_code=250, smtp_reply="2.0.0 queued", tls_version="TLSv1.3",
    )  # fmt: skip


def _event_row(recipient: str, type: str, second: int) -> tuple[Any, ...]:
    return (_at(second), "acme", "critical", recipient, type, 0, None, None, None, None, None)


def test_a_message_s_deliveries_come_from_the_ledger_in_time_order() -> None:
    session = MessageSession(
        [
            _event_row("a@example.org", "ACCEPTED", 1),
            _event_row("b@example.org", "ACCEPTED", 1),
            _event_row("b@example.org", "DEFERRED", 3),
        ],
        [_delivery("a@example.org", 2), _delivery("b@example.org", 9)],
    )
    rows = asyncio.run(_timeline(session).events("acme", "m1"))  # type: ignore[arg-type]
    assert [(r.recipient, r.type, r.occurred_at.second) for r in rows] == [
        ("a@example.org", "ACCEPTED", 1),
        ("b@example.org", "ACCEPTED", 1),
        ("a@example.org", "DELIVERED", 2),
        ("b@example.org", "DEFERRED", 3),
        ("b@example.org", "DELIVERED", 9),
    ]
    delivered = rows[2]
    assert (delivered.priority, delivered.attempt, delivered.smtp_code) == ("critical", 2, 250)
    assert (delivered.mx_host, delivered.smtp_text) == ("mx.example.org", "2.0.0 queued")


def test_a_delivered_row_of_an_older_version_is_shown_once() -> None:
    session = MessageSession(
        [_event_row("a@example.org", "ACCEPTED", 1), _event_row("a@example.org", "DELIVERED", 2)],
        [_delivery("a@example.org", 2)],
    )
    rows = asyncio.run(_timeline(session).events("acme", "m1"))  # type: ignore[arg-type]
    assert [r.type for r in rows] == ["ACCEPTED", "DELIVERED"]
