"""The consumer lag gauge follows a lane's backlog on a real broker: it shows the records not yet
committed while the handler is held, and falls to zero once they are done and committed."""

from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from prometheus_client import REGISTRY

from services.common.config import CommonSettings
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Inbound, Output
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import admin_config, producer_config

N = 40


def _lag(lane: str, topic: str) -> float | None:
    return REGISTRY.get_sample_value(
        "mailstream_consumer_lag", {"lane": lane, "topic": topic, "partition": "0"}
    )


async def _until(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_lag_gauge_shows_the_backlog_then_zero(settings: CommonSettings) -> None:
    run = uuid.uuid4().hex[:8]
    topic, lane_name = f"{settings.kafka.topic_prefix}lag.{run}", f"lag-{run}"
    admin = AdminClient(admin_config(settings.kafka))
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    producer = Producer(producer_config(settings.kafka))
    for i in range(N):
        producer.produce(topic, key=b"k", value=f"{i}".encode())
    assert producer.flush(30) == 0

    gate = asyncio.Event()
    handled: list[int] = []

    async def handler(inbound: Inbound) -> list[Output]:
        await gate.wait()
        handled.append(inbound.offset)
        return []

    kafka = settings.kafka.model_copy(update={"lag_interval_s": 0.3, "commit_interval_s": 0.2})
    lane = Lane(
        name=lane_name,
        group_id=f"lag-{run}",
        topics=[topic],
        handler=handler,
        dlq_topic="unused",
        max_in_flight=1,
    )
    stop = asyncio.Event()
    out = AsyncProducer(config=producer_config(kafka))
    out.start()
    task = asyncio.create_task(run_lanes(lanes=[lane], settings=kafka, producer=out, stop=stop))
    try:
        # Held: nothing is committed, so every record counts.
        await _until("the lag of the held lane", lambda: _lag(lane_name, topic) == N)
        gate.set()
        await _until("every record handled", lambda: len(handled) == N)
        await _until("lag back to zero", lambda: _lag(lane_name, topic) == 0)
    finally:
        stop.set()
        await task
        await out.close()
