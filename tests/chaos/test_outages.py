"""Outages survived in place: Cassandra stopped for 60 s in the middle of a run, with nobody
to restart what dies. Every service must stay up and wait (not ready, saying why), deliver all
the mail once Cassandra is back, and send nothing twice: nothing is killed, so no duplicate
is excused. MAILSTREAM_OUTAGE_MESSAGES sets the message count (10,000 by default)."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import Progress, new_universe, outcome, publish_run, stack, start_run
from tests.integration.harness import RecordingSmtp, ServiceProcess, wait_until

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
    universe = new_universe(settings, env, tmp_path, name="outage")
    supervisor, events = start_run(
        universe, serde, tmp_path, restart=False, session_services=services
    )
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

    run = outcome(progress.mine, smtp, universe.tag)
    duplicates = sum(run.duplicates.values())
    with capsys.disabled():
        print(
            f"\noutage: {N} messages in {elapsed:.0f}s; Cassandra down {CASSANDRA_OUTAGE_S}s "
            f"after {at_outage} terminal, {during} more during it (events already on their "
            f"way), all terminal {recovered_s:.0f}s after it came back; "
            f"lost={run.lost(N)}; terminal types={dict(run.types)}; "
            f"duplicates at SMTP={duplicates}; republished terminal events={run.republished}; "
            f"service exits={len(exits)}, restarts=0; not ready during the outage: {reasons}"
        )
    assert not exits, exits
    assert all(alive_during.values()), alive_during
    assert run.lost(N) == 0
    assert not run.not_one
    assert run.types == Counter({"DELIVERED": N + run.republished})
    assert len(run.copies) == N
    assert duplicates == 0
    assert all(code == 200 for code in ready_after.values()), ready_after
    assert all(code == 0 for code in codes.values()), codes
