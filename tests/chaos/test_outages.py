"""Outages survived in place: Cassandra stopped for 60 s in the middle of a run, with nobody
to restart what dies. Every service must stay up and wait (not ready, saying why), deliver all
the mail once Cassandra is back, and send nothing twice: nothing is killed, so no duplicate
is excused. MAILSTREAM_OUTAGE_MESSAGES sets the message count (10,000 by default)."""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from services.common.avro.records import EmailEvent
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import Progress, Supervisor, at_smtp, new_universe, publish_run, stack
from tests.integration.harness import RecordingSmtp, ServiceProcess, TopicCollector, wait_until

N = int(os.environ.get("MAILSTREAM_OUTAGE_MESSAGES", "10000"))
CASSANDRA_OUTAGE_S = 60

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(1800)]


def test_cassandra_outage_needs_no_restart_and_sends_nothing_twice(
    settings: CommonSettings,
    env: dict[str, str],
    services: dict[str, ServiceProcess],
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = {module: proc.stop() for module, proc in services.items()}
    assert all(code == 0 for code in codes.values()), codes

    universe = new_universe(settings, env, tmp_path, name="outage")
    supervisor = Supervisor(env=universe.env, logs=tmp_path, restart=False)
    supervisor.start()
    wait_until("the services to be consuming", supervisor.consuming, 120)
    events = TopicCollector(
        kafka=universe.settings.kafka,
        topics=[universe.topics.events],
        group_id=f"events-{universe.tag}",
        decode=lambda m: serde.decode(EmailEvent, m.value),
    )
    events.start()
    started = time.monotonic()
    publish_run(universe, N)
    progress = Progress(events, N)
    wait_until(
        "a fifth of the mail delivered",
        lambda: (progress.update(), progress.fraction("terminal") >= 0.2)[1],
        600,
        interval=0.5,
    )
    stack("down", "cassandra")
    down_at = time.monotonic()
    at_outage = progress.terminal_count
    # While Cassandra is away the services stay up and say why they are not ready.
    wait_until(
        "every service to report Cassandra down",
        lambda: all(
            p.readiness()[0] == 503 and not p.readiness()[1]["checks"]["cassandra"]["ok"]
            for p in supervisor.procs.values()
        ),
        30,
        interval=1.0,
    )
    reasons = {}
    for module, proc in supervisor.procs.items():
        checks = proc.readiness()[1]["checks"]
        reasons[module.rsplit(".", 1)[-1]] = sorted(k for k, c in checks.items() if not c["ok"])
    time.sleep(max(0.0, CASSANDRA_OUTAGE_S - (time.monotonic() - down_at)))
    alive_during = {m: p.alive() for m, p in supervisor.procs.items()}
    stack("up", "cassandra")
    back_at = time.monotonic()
    progress.update()
    during = progress.terminal_count - at_outage
    wait_until(
        "every recipient to reach a terminal event",
        lambda: (progress.update(), progress.terminal_count == N)[1],
        900,
        interval=1.0,
    )
    recovered_s = time.monotonic() - back_at
    elapsed = time.monotonic() - started
    time.sleep(3)  # anything sent or published twice shows up by now
    ready_after = {m: p.readiness()[0] for m, p in supervisor.procs.items()}
    exits = list(supervisor.exits)
    codes = supervisor.stop()
    events.stop()
    progress.update()

    terminal_ids: dict[str, set[str]] = defaultdict(set)
    types: Counter[str] = Counter()
    for event in progress.mine:
        if event.type.terminal:
            terminal_ids[event.message_id].add(event.event_id)
            types[event.type.value] += 1
    copies, _ = at_smtp(smtp, universe.tag)
    duplicates = sum(n - 1 for n in copies.values())
    republished = sum(types.values()) - len(terminal_ids)
    with capsys.disabled():
        print(
            f"\noutage: {N} messages in {elapsed:.0f}s; Cassandra down {CASSANDRA_OUTAGE_S}s "
            f"after {at_outage} terminal, {during} more during it (events already on their "
            f"way), all terminal {recovered_s:.0f}s after it came back; "
            f"lost={N - len(terminal_ids)}; terminal types={dict(types)}; "
            f"duplicates at SMTP={duplicates}; republished terminal events={republished}; "
            f"service exits={len(exits)}, restarts=0; not ready during the outage: {reasons}"
        )
    assert not exits, exits
    assert all(alive_during.values()), alive_during
    assert len(terminal_ids) == N
    assert all(len(ids) == 1 for ids in terminal_ids.values())
    assert types == Counter({"DELIVERED": N + republished})
    assert len(copies) == N
    assert duplicates == 0
    assert all(code == 200 for code in ready_after.values()), ready_after
    assert all(code == 0 for code in codes.values()), codes
