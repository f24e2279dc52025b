"""Request fields that key Cassandra rows: an empty or huge one never reaches a query (the
server refuses it, and the service would crash on the same record again and again)."""

from __future__ import annotations

import dataclasses
from typing import Any

from services.common.avro.records import EmailEvent, EventType, SmtpReply
from services.common.priority import Priority
from services.common.tenants import TenantDirectory
from services.common.timeline import _EVENT, MAX_SMTP_TEXT, Timeline


class Session:
    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.batches = 0

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.statements.append((cql, params))
        return []

    async def write_all(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.batches += 1
        self.statements.extend(statements)


def _event(message_id: str, recipient: str | None, *, tenant_id: str = "acme") -> EmailEvent:
    return EmailEvent(
        event_id="e",
        message_id=message_id,
        tenant_id=tenant_id,
        priority=Priority.CRITICAL,
        type=EventType.REJECTED,
        occurred_at=0,
        attempt=0,
        recipient=recipient,
        reason="message_id_invalid",
    )


def _tables(statements: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    return [cql.split()[2] for cql, _ in statements]


async def test_timeline_skips_keys_cassandra_would_refuse() -> None:
    session = Session()
    timeline = Timeline(session=session)  # type: ignore[arg-type]
    await timeline.record(_event("", "a@b.example"))
    await timeline.record(_event("m" * 70_000, "a@b.example"))
    await timeline.record(_event("ok", "a@b.example", tenant_id="t" * 100_000))
    assert session.statements == []
    await timeline.record(_event("ok", ""))
    await timeline.record(_event("ok", "a" * 70_000))
    assert _tables(session.statements) == ["message_timeline", "message_tenants"] * 2
    session.statements.clear()
    await timeline.record(_event("ok", "A@b.example"))
    assert _tables(session.statements) == [
        "message_timeline",
        "message_tenants",
        "recipient_timeline",
    ]
    assert session.statements[2][1][:2] == ("a@b.example", "acme")


async def test_every_row_of_the_timeline_is_keyed_by_the_tenant() -> None:
    session = Session()
    timeline = Timeline(session=session)  # type: ignore[arg-type]
    await timeline.record(_event("same-id", "a@b.example", tenant_id="other"))
    by_table = {cql.split()[2]: params for cql, params in session.statements}
    assert by_table["message_timeline"][:2] == ("other", "same-id")
    assert by_table["message_tenants"] == ("same-id", "other")
    assert by_table["recipient_timeline"][:2] == ("a@b.example", "other")


async def test_an_empty_tenant_id_still_has_a_timeline() -> None:
    """A request REJECTED tenant_unknown for an empty tenant id can be traced."""
    session = Session()
    await Timeline(session=session).record(_event("ok", None, tenant_id=""))  # type: ignore[arg-type]
    assert _tables(session.statements) == ["message_timeline", "message_tenants"]


async def test_tenant_lookups_of_impossible_ids_send_no_query() -> None:
    session = Session()
    tenants = TenantDirectory(session=session)  # type: ignore[arg-type]
    assert await tenants.get("") is None
    assert await tenants.get("t" * 100_000) is None
    assert session.statements == []
    assert await tenants.get("acme") is None
    assert len(session.statements) == 1


async def test_an_event_is_one_batch_of_bounded_size() -> None:
    """The event's rows go out as one batch, which Cassandra refuses past 50 KiB: the reply
    text an MX may make as long as it likes is cut to MAX_SMTP_TEXT in the timeline."""
    session = Session()
    event = _event("ok", "a@b.example")
    event = dataclasses.replace(
        event, smtp=SmtpReply(code=550, text="x" * 100_000, mx_host="mx.example")
    )
    await Timeline(session=session).record(event)  # type: ignore[arg-type]
    assert session.batches == 1 and session.statements[0][0] is _EVENT
    (text,) = (p for p in session.statements[0][1] if isinstance(p, str) and p.startswith("xx"))
    assert len(text) == MAX_SMTP_TEXT
