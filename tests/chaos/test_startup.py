"""Chaos: the services start while Cassandra, then Kafka, is down; they stay up and not ready
(/readyz 503 naming the missing dependency), become ready without a restart once it returns,
and then deliver. Readiness also follows a Kafka outage that begins while they run.

It stops the shared Cassandra and Kafka, so it is disruptive and runs after the other tests;
its services have a universe of their own (topic prefix and keyspace).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.client import EmailClient
from services.common.avro.records import EmailEvent, EventType
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import new_universe, stack
from tests.integration.harness import (
    ServiceProcess,
    TopicCollector,
    events_for,
    send_message,
    until_terminal,
    wait_until,
)
from tests.stack import SERVICES

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(900)]
DOWN_FOR_S = 15  # long enough for several failed connection attempts by every service


def _all_ready(procs: dict[str, ServiceProcess]) -> bool:
    return all(p.readiness()[0] == 200 for p in procs.values())


def _not_ready_for(procs: dict[str, ServiceProcess], check: str) -> dict[str, object]:
    """Each service's /readyz while `check` fails; asserts 503 with that check false."""
    seen: dict[str, object] = {}
    for module, proc in procs.items():
        status, report = proc.readiness()
        assert status == 503, f"{module} answered {status} {report}"
        checks = report.get("checks", {})
        assert isinstance(checks, dict) and checks[check]["ok"] is False, (module, report)
        seen[module] = checks[check]["detail"]
    return seen


def _assert_alive(procs: dict[str, ServiceProcess], when: str) -> None:
    dead = {m: p.log_text()[-1500:] for m, p in procs.items() if not p.alive()}
    assert not dead, f"{when}: services exited: {dead}"


def _deliver_one(
    client: EmailClient, events: TopicCollector, tag: str, procs: dict[str, ServiceProcess]
) -> None:
    mid = send_message(client, f"{tag}@inbox.mailstream.test")
    try:
        mine = until_terminal(events, mid, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_state(procs, events, mid)}") from exc
    assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED], mine


def _state(procs: dict[str, ServiceProcess], events: TopicCollector, mid: str) -> str:
    """What a failed delivery leaves to go on: the message's events so far, and each
    service's liveness and last lines other than librdkafka's own."""
    lines = [f"events for {mid}: {[e.type.name for e in events_for(events.items, mid)]}"]
    for module, proc in procs.items():
        tail = [ln[:300] for ln in proc.log_text().splitlines() if ln.startswith("{")][-12:]
        lines.append(f"{module} alive={proc.alive()} last lines:\n  " + "\n  ".join(tail))
    return "\n".join(lines)


def _settle_rebalance(procs: dict[str, ServiceProcess], before: dict[str, int]) -> None:
    """Ready means the broker answers again. When the outage outlasted the consumers'
    sessions, each group rebalances next; this waits (up to 60 s) until every lane has been
    given its partitions again. A short outage may keep the old assignments, with no new
    log line, so running out of time here is not itself a failure."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = {m: p.count_in_log("partitions_assigned") for m, p in procs.items()}
        if all(counts[m] >= before[m] + SERVICES[m] for m in procs):
            return
        time.sleep(0.5)


def test_services_wait_for_cassandra_and_kafka_then_become_ready_without_a_restart(
    settings: CommonSettings,
    env: dict[str, str],
    services: dict[str, ServiceProcess],
    serde: RecordSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for proc in services.values():  # the session's services would only crash-loop
        proc.stop()
    universe = new_universe(settings, env, tmp_path, name="boot")
    boot, boot_env, topics = universe.settings, universe.env, universe.topics
    figures: list[str] = []
    procs: dict[str, ServiceProcess] = {}
    try:
        # 1. Cassandra is down when the services start.
        stack("down", "cassandra")
        procs = {
            m: ServiceProcess(module=m, env=boot_env, log_path=tmp_path / f"{m}.log")
            for m in SERVICES
        }
        for proc in procs.values():
            proc.start()
        wait_until("health listeners", lambda: all(p.health_port() for p in procs.values()), 60)
        time.sleep(DOWN_FOR_S)
        _assert_alive(procs, "Cassandra down at start")
        seen = _not_ready_for(procs, "cassandra")
        pids = {m: p.proc.pid for m, p in procs.items() if p.proc is not None}
        began = time.monotonic()
        stack("up", "cassandra")
        wait_until("ready once Cassandra is back", lambda: _all_ready(procs), 180)
        figures.append(
            f"cassandra down at start: not ready for {DOWN_FOR_S}s "
            f"({next(iter(seen.values()))!s:.60}), ready {time.monotonic() - began:.1f}s "
            "after 'stack up cassandra' returned"
        )
        assert {m: p.proc.pid for m, p in procs.items() if p.proc is not None} == pids
        assert all(p.count_in_log('"cassandra_unavailable"') >= 2 for p in procs.values())

        events = TopicCollector(
            kafka=boot.kafka,
            topics=[topics.events],
            group_id=f"events-{universe.tag}",
            decode=lambda m: serde.decode(EmailEvent, m.value),
        )
        events.start()
        with EmailClient(kafka=boot.kafka) as client:
            wait_until(
                "lanes consuming",
                lambda: all(
                    p.count_in_log("partitions_assigned") >= SERVICES[m] for m, p in procs.items()
                ),
                90,
            )
            _deliver_one(client, events, f"{universe.tag}cassandra", procs)

            # 2. Kafka goes away while they run: readiness follows, nobody exits.
            assigned = {m: p.count_in_log("partitions_assigned") for m, p in procs.items()}
            stack("down", "kafka")
            wait_until(
                "not ready while Kafka is down",
                lambda: all(p.readiness()[0] == 503 for p in procs.values()),
                60,
            )
            _not_ready_for(procs, "kafka")
            _assert_alive(procs, "Kafka down while running")
            began = time.monotonic()
            stack("up", "kafka")
            wait_until("ready once Kafka is back", lambda: _all_ready(procs), 120)
            figures.append(
                f"kafka down while running: ready "
                f"{time.monotonic() - began:.1f}s after 'stack down/up kafka'"
            )
            _settle_rebalance(procs, assigned)
            _deliver_one(client, events, f"{universe.tag}kafka", procs)

        # 3. Kafka is down when the services start.
        for proc in procs.values():
            assert proc.stop() == 0, proc.log_text()[-2000:]
        stack("down", "kafka")
        for proc in procs.values():
            proc.log_path.write_text("")  # the next health_listening line is this run's
            proc.start()
        wait_until("health listeners", lambda: all(p.health_port() for p in procs.values()), 60)
        time.sleep(DOWN_FOR_S)
        _assert_alive(procs, "Kafka down at start")
        _not_ready_for(procs, "kafka")
        began = time.monotonic()
        stack("up", "kafka")
        wait_until("ready once Kafka is back", lambda: _all_ready(procs), 120)
        figures.append(
            f"kafka down at start: ready {time.monotonic() - began:.1f}s after "
            "'stack up kafka' returned"
        )
        with EmailClient(kafka=boot.kafka) as client:
            _deliver_one(client, events, f"{universe.tag}kafka-start", procs)
        events.stop()
    finally:
        for proc in procs.values():
            proc.stop()
        stack("up", "kafka", "cassandra")
    with capsys.disabled():
        print("\nstartup outages: " + "; ".join(figures))
