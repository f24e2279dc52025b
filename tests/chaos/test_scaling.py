"""Scaling without duplicates: during one 10,000-message run each service in turn (ingest,
router, sender, event-publisher) goes from one process to two and back to one, the second
stopped with SIGTERM, as an autoscaler does all day. Partitions move at every step; the work
in flight on them is drained and committed before they do, so nothing is sent twice, no
event is published twice and nothing is lost. MAILSTREAM_SCALING_MESSAGES sets the count."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import Progress, new_universe, outcome, publish_run, start_run
from tests.integration.harness import RecordingSmtp, ServiceProcess, wait_until
from tests.stack import SERVICES

N = int(os.environ.get("MAILSTREAM_SCALING_MESSAGES", "10000"))
# Fractions of the run's terminal events at which each service gets its second process, and
# at which that process is stopped again.
PLAN = (
    ("services.ingest", 0.05, 0.22),
    ("services.router", 0.25, 0.42),
    ("services.sender", 0.45, 0.62),
    ("services.event_publisher", 0.65, 0.82),
)

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(1800)]


def test_scaling_each_service_out_and_in_sends_and_publishes_nothing_twice(
    settings: CommonSettings,
    env: dict[str, str],
    services: dict[str, ServiceProcess],
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    universe = new_universe(settings, env, tmp_path, name="scaling")
    supervisor, events = start_run(
        universe, serde, tmp_path, restart=False, session_services=services
    )
    started = time.monotonic()
    # Paced a little under the pipeline's throughput, so every stage has work in flight
    # whenever partitions move.
    publisher = threading.Thread(target=publish_run, args=(universe, N), kwargs={"per_second": 100})
    publisher.start()
    progress = Progress(events, N)
    stops: dict[str, int | None] = {}
    joined: dict[str, float] = {}
    for module, grow_at, shrink_at in PLAN:
        wait_until(
            f"{grow_at:.0%} terminal before scaling {module} out",
            lambda f=grow_at: (progress.update(), progress.fraction("terminal") >= f)[1],
            900,
            interval=0.5,
        )
        name = module.rsplit(".", 1)[-1]
        extra = ServiceProcess(module=module, env=universe.env, log_path=tmp_path / f"{name}-2.log")
        extra.start()
        began = time.monotonic()
        wait_until(
            f"the second {name} to be consuming",
            lambda p=extra, m=module: p.count_in_log("partitions_assigned") >= SERVICES[m],
            120,
        )
        joined[name] = round(time.monotonic() - began, 1)
        wait_until(
            f"{shrink_at:.0%} terminal before scaling {module} in",
            lambda f=shrink_at: (progress.update(), progress.fraction("terminal") >= f)[1],
            900,
            interval=0.5,
        )
        stops[name] = extra.stop()
    wait_until(
        "every recipient to reach a terminal event",
        lambda: (progress.update(), progress.terminal_count == N)[1],
        900,
        interval=1.0,
    )
    elapsed = time.monotonic() - started
    publisher.join(60)
    time.sleep(3)  # anything sent or published twice shows up by now
    exits = list(supervisor.exits)
    codes = supervisor.stop()
    events.stop()
    progress.update()

    by_id = Counter(e.event_id for e in progress.mine)
    republished = sum(n - 1 for n in by_id.values())
    run = outcome(progress.mine, smtp, universe.tag)
    duplicates = sum(run.duplicates.values())
    with capsys.disabled():
        print(
            f"\nscaling 1->2->1 of each service: {N} messages in {elapsed:.0f}s; "
            f"lost={run.lost(N)}; duplicates at SMTP={duplicates}; republished events="
            f"{republished}; second process consuming after {joined} s; its exit codes {stops}; "
            f"service exits={len(exits)}"
        )
    assert not exits, exits
    assert all(code == 0 for code in stops.values()), stops
    assert run.lost(N) == 0 and not run.not_one
    assert len(run.copies) == N
    assert duplicates == 0
    assert republished == 0
    assert all(code == 0 for code in codes.values()), codes
