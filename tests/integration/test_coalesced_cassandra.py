"""Requests of many records at once, coalesced (services/common/cassandra/coalesce.py), against
the real Cassandra: each caller gets its own answer, and the largest writes a message can make
still fit Cassandra's batch limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from cassandra.cluster import Session

from services.common.avro.records import EmailEvent, EventType, SmtpReply
from services.common.cassandra.session import AsyncSession, connect
from services.common.config import CommonSettings
from services.common.deliveries import Delivery, DeliveryLedger
from services.common.priority import Priority
from services.common.suppressions import Suppress, SuppressionTable, epoch_ms
from services.common.timeline import MAX_SMTP_TEXT, Timeline


@pytest.fixture
def session(provisioned: None, settings: CommonSettings) -> Iterator[Session]:
    cluster, raw = connect(settings.cassandra, keyspace=settings.cassandra.keyspace)
    try:
        yield raw
    finally:
        cluster.shutdown()


def _delivery(n: int) -> Delivery:
    return Delivery(
        at_ms=epoch_ms(), attempt=n, mx_host=f"mx{n}.test", code=250, reply="ok", tls_version=None
    )


def test_ledger_reads_of_many_tasks_at_once_each_get_their_own(session: Session) -> None:
    ledger = DeliveryLedger(session=AsyncSession(session=session))
    run = uuid.uuid4().hex[:8]
    # Two messages to the same two recipients: the merged query reads every pair of them.
    tasks = [(f"m-{run}-{m}", f"r{r}-{run}@inbox.mailstream.test") for m in (1, 2) for r in (1, 2)]
    delivered = {tasks[0]: 1, tasks[3]: 2}

    async def scenario() -> list[Delivery | None]:
        for (message, recipient), n in delivered.items():
            await ledger.record(
                tenant_id="acme", message_id=message, recipient=recipient, delivery=_delivery(n)
            )
        return await asyncio.gather(
            *(ledger.delivered(tenant_id="acme", message_id=m, recipient=r) for m, r in tasks),
            ledger.delivered(tenant_id="other", message_id=tasks[0][0], recipient=tasks[0][1]),
        )

    *found, other_tenant = asyncio.run(scenario())
    assert [d.attempt if d else None for d in found] == [1, None, None, 2]
    assert other_tenant is None


def test_suppression_reads_of_many_requests_at_once_each_get_their_own(session: Session) -> None:
    table = SuppressionTable(session=AsyncSession(session=session))
    run = uuid.uuid4().hex[:8]
    a, b, c = (f"{x}-{run}@inbox.mailstream.test" for x in "abc")
    now = epoch_ms()

    async def scenario() -> list[set[str]]:
        await table.put(Suppress("acme", a, "hard_bounce", now, None))
        await table.put(Suppress("acme", b, "complaint", now, now + 3_600_000))
        await table.put(Suppress("other", c, "hard_bounce", now, None))
        return await asyncio.gather(
            table.suppressed("acme", [a, c], now_ms=now),
            table.suppressed("acme", [b], now_ms=now),
            table.suppressed("acme", [b], now_ms=now + 7_200_000),  # lapsed by then
            table.suppressed("acme", [c], now_ms=now),
            table.suppressed("other", [a, c], now_ms=now),
        )

    assert asyncio.run(scenario()) == [{a}, {b}, set(), set(), {c}]


def test_the_largest_writes_of_many_messages_at_once_all_land(session: Session) -> None:
    """100 recipients each, with the longest SMTP text a row keeps, for ten messages at once:
    split into batches Cassandra accepts, every row written."""
    timeline = Timeline(session=AsyncSession(session=session))
    run = uuid.uuid4().hex[:8]
    text = "5.1.1 " + "é" * MAX_SMTP_TEXT  # two octets a character: the heaviest text
    messages = [f"big-{run}-{n}" for n in range(10)]

    def events(message: str) -> list[EmailEvent]:
        return [
            EmailEvent(
                event_id=f"{message}-{r}",
                message_id=message,
                tenant_id="acme",
                priority=Priority.BULK,
                type=EventType.BOUNCED,
                occurred_at=epoch_ms(),
                recipient=f"r{r}-{run}@inbox.mailstream.test",
                attempt=1,
                smtp=SmtpReply(code=550, text=text, mx_host="mx.test"),
            )
            for r in range(100)
        ]

    async def scenario() -> list[int]:
        await asyncio.gather(*(timeline.record_all(events(m)) for m in messages))
        return [len(await timeline.events("acme", m)) for m in messages]

    assert asyncio.run(scenario()) == [100] * 10
