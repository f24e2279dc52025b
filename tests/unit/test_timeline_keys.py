"""Request fields that key Cassandra rows: an empty or huge one never reaches a query (the
server refuses it, and the service would crash on the same record again and again)."""

from __future__ import annotations

from typing import Any

from services.common.avro.records import EmailEvent, EventType
from services.common.priority import Priority
from services.common.tenants import TenantDirectory
from services.event_publisher.timeline import Timeline


class Session:
    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.statements.append((cql, params))
        return []


def _event(message_id: str, recipient: str | None) -> EmailEvent:
    return EmailEvent(
        event_id="e",
        message_id=message_id,
        tenant_id="acme",
        priority=Priority.CRITICAL,
        type=EventType.REJECTED,
        occurred_at=0,
        attempt=0,
        recipient=recipient,
        reason="message_id_invalid",
    )


async def test_timeline_skips_keys_cassandra_would_refuse() -> None:
    session = Session()
    timeline = Timeline(session=session)  # type: ignore[arg-type]
    await timeline.record(_event("", "a@b.example"))
    await timeline.record(_event("m" * 70_000, "a@b.example"))
    assert session.statements == []
    await timeline.record(_event("ok", ""))
    await timeline.record(_event("ok", "a" * 70_000))
    assert [s[0].split()[2] for s in session.statements] == ["message_events", "message_events"]
    await timeline.record(_event("ok", "a@b.example"))
    assert len(session.statements) == 4


async def test_tenant_lookups_of_impossible_ids_send_no_query() -> None:
    session = Session()
    tenants = TenantDirectory(session=session)  # type: ignore[arg-type]
    assert await tenants.get("") is None
    assert await tenants.get("t" * 100_000) is None
    assert session.statements == []
    assert await tenants.get("acme") is None
    assert len(session.statements) == 1
