"""The runner's three error kinds on a real broker: a record whose handling keeps raising is
quarantined with its terminal events and the lane goes on; an infrastructure error makes the
record wait (readiness says why) and nothing is skipped; a rebalance drains what is in flight
before the revoke completes, so a second consumer joining and leaving redoes nothing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.common.config import CommonSettings, KafkaSettings
from services.common.errors import TransientError
from services.common.health import Health
from services.common.kafka import headers
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Inbound, Output
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import admin_config, producer_config
from tests.integration.harness import TopicCollector, wait_until


class LaneThread:
    """One lane on the real runner, on an event loop and thread of its own (a process's
    worth: its own consumer and producer), stopped gracefully as SIGTERM would."""

    def __init__(self, *, kafka: KafkaSettings, lane: Lane, health: Health | None = None) -> None:
        self._kafka = kafka
        self._lane = lane
        self._health = health
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            producer = AsyncProducer(config=producer_config(self._kafka))
            producer.start()
            try:
                await run_lanes(
                    lanes=[self._lane],
                    settings=self._kafka,
                    producer=producer,
                    stop=self._stop,
                    health=self._health,
                )
            finally:
                await producer.close()

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self._thread.start()
        wait_until("lane loop", lambda: self._stop is not None, 10)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the lane did not stop"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _topics(kafka: KafkaSettings, *names: str, partitions: int = 3) -> None:
    admin = AdminClient(admin_config(kafka))
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in names]
    for future in admin.create_topics(new).values():
        future.result()


def _publish(kafka: KafkaSettings, topic: str, values: list[str]) -> None:
    producer = Producer(producer_config(kafka))
    for i, value in enumerate(values):
        producer.produce(topic, key=f"k{i}".encode(), value=value.encode())
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def _collector(
    kafka: KafkaSettings, topic: str, decode: Callable[[Inbound], Any]
) -> TopicCollector:
    collector = TopicCollector(
        kafka=kafka, topics=[topic], group_id=f"read-{uuid.uuid4().hex[:6]}", decode=decode
    )
    collector.start()
    return collector


def test_poison_is_quarantined_infrastructure_waits_and_the_lane_goes_on(
    settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = settings.kafka.model_copy(
        update={"handler_attempts": 3, "infra_backoff_first_s": 0.2, "infra_backoff_max_s": 0.5}
    )
    run = uuid.uuid4().hex[:8]
    prefix = kafka.topic_prefix
    src, out, dlq, events = (f"{prefix}faults.{n}.{run}" for n in ("in", "out", "dlq", "ev"))
    _topics(kafka, out, dlq, events)
    tries: Counter[str] = Counter()
    health = Health(service="test", required=("kafka", "cassandra"))
    health.set("kafka", True)
    health.set("cassandra", True)
    waiting_seen: list[dict[str, object]] = []

    async def handle(inbound: Inbound) -> list[Output]:
        value = inbound.value.decode()
        tries[value] += 1
        if value.startswith("poison"):
            raise ValueError(f"cannot build {value}: CR LF in a filename")
        if value == "flaky" and tries[value] == 1:
            raise RuntimeError("failed once")
        if value == "outage" and tries[value] <= 4:
            if tries[value] == 3:
                waiting_seen.append(health.report())
            raise TransientError("NoHostAvailable: Cassandra is down")
        return [Output(topic=out, key=inbound.key, value=inbound.value)]

    async def terminal(inbound: Inbound, error: Exception) -> list[Output]:
        return [Output(topic=events, key=inbound.key, value=b"REJECTED internal_error")]

    values = [f"m-{i}" for i in range(300)]
    values[10] = "poison-a"
    values[11] = "flaky"
    values[150] = "outage"
    values[200] = "poison-b"
    # All in one partition: the lane must get past each bad record to reach the next ones.
    _topics(kafka, f"{src}.1p", partitions=1)
    _publish(kafka, f"{src}.1p", values)
    outputs = _collector(kafka, out, lambda m: m.value.decode())
    letters = _collector(kafka, dlq, lambda m: m)
    terminals = _collector(kafka, events, lambda m: m.key)
    lane = Lane(
        name=f"faults-{run}",
        group_id=f"faults-{run}",
        topics=[f"{src}.1p"],
        handler=handle,
        dlq_topic=dlq,
        on_quarantine=terminal,
    )
    worker = LaneThread(kafka=kafka, lane=lane, health=health)
    worker.start()
    try:
        outputs.wait_for("every good record", lambda xs: len(set(xs)) == 298, 90)
        letters.wait_for("two quarantined records", lambda xs: len(xs) == 2, 30)
        terminals.wait_for("their terminal events", lambda xs: len(xs) == 2, 30)
        assert worker.alive and worker.error is None
    finally:
        worker.stop()
        for c in (outputs, letters, terminals):
            c.stop()
    assert worker.error is None
    got = Counter(outputs.items)
    assert set(got) == set(values) - {"poison-a", "poison-b"}
    assert tries["poison-a"] == tries["poison-b"] == 3  # handler_attempts, then quarantine
    assert tries["flaky"] == 2 and tries["outage"] == 5
    by_value = {m.value.decode(): dict(m.headers) for m in letters.items}
    assert set(by_value) == {"poison-a", "poison-b"}
    first = by_value["poison-a"]
    assert first[headers.ERROR_CLASS] == b"ValueError"
    assert b"CR LF" in first[headers.ERROR_MESSAGE]
    assert first[headers.ORIGINAL_TOPIC] == f"{src}.1p".encode()
    assert first[headers.ORIGINAL_OFFSET] == b"10"
    assert first[headers.ATTEMPTS] == b"3"
    assert first[headers.LANE] == lane.name.encode()
    # One failure, one digest: both records failed at the same place.
    assert first[headers.TRACEBACK_DIGEST] == by_value["poison-b"][headers.TRACEBACK_DIGEST]
    assert sorted(terminals.items) == [b"k10", b"k200"]
    # While the outage lasted the lane said why it was not ready; afterwards it is again.
    checks = waiting_seen[0]["checks"]
    assert isinstance(checks, dict)
    assert checks[f"lane-{lane.name}"]["ok"] is False
    assert "NoHostAvailable" in checks[f"lane-{lane.name}"]["detail"]
    assert health.ready
    with capsys.disabled():
        print(
            f"\nrunner faults: {len(values)} records, quarantined=2, "
            f"outage retries={tries['outage'] - 1}, delivered={len(got)}, "
            f"duplicates={sum(got.values()) - len(got)}"
        )


def test_a_consumer_joining_and_leaving_redoes_nothing(
    settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The autoscaler's day: a second process joins mid-stream and is stopped with SIGTERM
    later. Work in flight on revoked partitions finishes and is committed before they move,
    so each record's output is produced once."""
    kafka = settings.kafka
    run = uuid.uuid4().hex[:8]
    src, out = f"{kafka.topic_prefix}scale.in.{run}", f"{kafka.topic_prefix}scale.out.{run}"
    _topics(kafka, src, out, partitions=6)
    n = 3000
    _publish(kafka, src, [f"m-{i}" for i in range(n)])
    outputs = _collector(kafka, out, lambda m: m.value.decode())

    async def slow(inbound: Inbound) -> list[Output]:
        await asyncio.sleep(0.2)  # a long in-flight window, as an SMTP transaction has
        return [Output(topic=out, key=inbound.key, value=inbound.value)]

    def lane() -> Lane:
        return Lane(
            name=f"scale-{run}",
            group_id=f"scale-{run}",
            topics=[src],
            handler=slow,
            dlq_topic=out + ".dlq",
            max_in_flight=100,
        )

    first = LaneThread(kafka=kafka, lane=lane())
    second = LaneThread(kafka=kafka, lane=lane())
    began = time.monotonic()
    first.start()
    try:
        outputs.wait_for("20% done", lambda xs: len(xs) >= n // 5, 120)
        second.start()
        outputs.wait_for("60% done", lambda xs: len(xs) >= 3 * n // 5, 120)
        second.stop()
        outputs.wait_for("all done", lambda xs: len(set(xs)) == n, 180)
        time.sleep(2)  # anything produced twice would show by now
    finally:
        for worker in (first, second):
            if worker.alive:
                worker.stop()
        outputs.stop()
    assert first.error is None and second.error is None
    counts = Counter(outputs.items)
    duplicates = sum(c - 1 for c in counts.values())
    with capsys.disabled():
        print(
            f"\nscaling 1->2->1 on the runner: {n} records in {time.monotonic() - began:.0f}s, "
            f"lost={n - len(counts)}, duplicates={duplicates}"
        )
    assert len(counts) == n
    assert duplicates == 0
