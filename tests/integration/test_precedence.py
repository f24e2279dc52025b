"""Strict priority between the lanes of one process, on a real broker: while the critical
lane is working, the bulk lane keeps no more than `outranked_max_in_flight` messages in
flight; once critical work is done, bulk opens its full window again."""

from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.common.config import CommonSettings
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Inbound, Output
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import admin_config, producer_config
from services.common.priority import Priority

BULK = 60


async def _until(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_bulk_yields_to_critical_work_in_flight(settings: CommonSettings) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = f"{settings.kafka.topic_prefix}prec.{run}"
    topics = {p: f"{prefix}.{p.slug}" for p in (Priority.CRITICAL, Priority.BULK)}
    admin = AdminClient(admin_config(settings.kafka))
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        future.result()
    producer = Producer(producer_config(settings.kafka))

    critical_gate, bulk_gate = asyncio.Event(), asyncio.Event()
    critical_started: list[int] = []
    bulk_in_flight, bulk_peak_while_outranked, bulk_done = 0, 0, 0

    async def critical(inbound: Inbound) -> list[Output]:
        critical_started.append(inbound.offset)
        await critical_gate.wait()
        return []

    async def bulk(_inbound: Inbound) -> list[Output]:
        nonlocal bulk_in_flight, bulk_peak_while_outranked, bulk_done
        bulk_in_flight += 1
        if critical_started and not critical_gate.is_set():
            bulk_peak_while_outranked = max(bulk_peak_while_outranked, bulk_in_flight)
        await bulk_gate.wait()
        bulk_in_flight -= 1
        bulk_done += 1
        return []

    kafka = settings.kafka.model_copy(
        update={"outranked_max_in_flight": 2, "precedence_hold_s": 60.0, "commit_interval_s": 0.2}
    )
    lanes = [
        Lane(
            name=f"prec-{p.slug}-{run}",
            group_id=f"prec-{p.slug}-{run}",
            topics=[topic],
            handler=critical if p is Priority.CRITICAL else bulk,
            dlq_topic="unused",
            max_in_flight=BULK,
            priority=p,
        )
        for p, topic in topics.items()
    ]
    stop = asyncio.Event()
    out = AsyncProducer(config=producer_config(kafka))
    out.start()
    task = asyncio.create_task(run_lanes(lanes=lanes, settings=kafka, producer=out, stop=stop))
    try:
        # Critical work first, held; then a bulk backlog far larger than the outranked window.
        producer.produce(topics[Priority.CRITICAL], key=b"c", value=b"otp")
        assert producer.flush(30) == 0
        await _until("the critical message in flight", lambda: critical_started)
        for i in range(BULK):
            producer.produce(topics[Priority.BULK], key=b"b", value=f"{i}".encode())
        assert producer.flush(30) == 0
        await _until("bulk working while outranked", lambda: bulk_in_flight == 2)
        await asyncio.sleep(1.0)  # several fetch rounds: bulk must stay at its outranked window
        assert bulk_in_flight == 2
        assert bulk_peak_while_outranked == 2

        critical_gate.set()  # critical done: bulk takes its full window
        await _until("bulk's full window", lambda: bulk_in_flight == BULK)
        bulk_gate.set()
        await _until("every bulk message handled", lambda: bulk_done == BULK)
    finally:
        critical_gate.set()
        bulk_gate.set()
        stop.set()
        await task
        await out.close()
