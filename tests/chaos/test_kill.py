"""Chaos: 20,000 messages through the whole pipeline while every service is SIGKILLed three
times (the sender once right as the SMTP server answers 250), the Kafka broker is restarted and
Cassandra is stopped for 60 s. Afterwards every recipient has exactly one terminal event,
nothing accepted is lost, and every duplicate at the SMTP server is a send that was in flight
when the sender died.

It runs in a universe of its own (topic prefix and keyspace), with its four services under a
supervisor that restarts whatever exits, as an orchestrator would. The session's services are
stopped first, so the outages cannot break them for other tests; it runs last for that reason.
MAILSTREAM_CHAOS_MESSAGES sets the message count (20,000 by default) for quicker local runs.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import (
    Progress,
    new_universe,
    outcome,
    publish_run,
    stack,
    start_run,
)
from tests.integration.harness import (
    Received,
    RecordingSmtp,
    ServiceProcess,
)
from tests.stack import SERVICES

N = int(os.environ.get("MAILSTREAM_CHAOS_MESSAGES", "20000"))
KILLS_EACH = 3
CASSANDRA_OUTAGE_S = 60
# A duplicate's first copy must reach the SMTP server this close to a sender death: the send
# it repeats was in flight. The server may record a message the dying sender had already
# pushed a moment after the kill was recorded (the kill time is taken before the signal), so
# the window opens slightly before the death.
IN_FLIGHT_WINDOW_S = 30.0
RECORDED_AFTER_KILL_S = 2.0

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(3600)]


def test_nothing_lost_under_kills_and_outages(
    settings: CommonSettings,
    env: dict[str, str],
    services: dict[str, ServiceProcess],
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    universe = new_universe(settings, env, tmp_path)
    supervisor, events = start_run(universe, serde, tmp_path, session_services=services)

    # One sender kill lands as the SMTP server answers 250: the send is done at the far end
    # and not yet in the ledger, the one window where a duplicate can arise.
    kill_at_250 = threading.Event()

    def on_message(_message: Received) -> None:
        if kill_at_250.is_set():
            kill_at_250.clear()
            threading.Timer(
                random.uniform(0.0, 0.01), supervisor.kill, ("services.sender", "sigkill-at-250")
            ).start()

    smtp.on_message(on_message)
    started = time.monotonic()
    publish_run(universe, N)

    progress = Progress(events, N)
    plan: list[tuple[str, float, Callable[[], None]]] = []
    for k, fraction in enumerate((0.1, 0.35, 0.6)):
        plan.append(("accepted", fraction, lambda: supervisor.kill("services.ingest")))
        plan.append(
            ("terminal", 0.05 + 0.25 * k, lambda: supervisor.kill("services.router")),
        )
        plan.append(("terminal", 0.08 + 0.25 * k, kill_at_250.set))
        plan.append(
            ("terminal", 0.11 + 0.25 * k, lambda: supervisor.kill("services.event_publisher"))
        )
    outages: dict[str, float] = {}

    def restart_kafka() -> None:
        began = time.monotonic()
        stack("down", "kafka")
        stack("up", "kafka")
        outages["kafka restart"] = time.monotonic() - began

    def cassandra_outage() -> None:
        began = time.monotonic()
        stack("down", "cassandra")
        time.sleep(CASSANDRA_OUTAGE_S)
        stack("up", "cassandra")
        outages["cassandra down"] = time.monotonic() - began

    plan.append(("terminal", 0.45, restart_kafka))
    plan.append(("terminal", 0.7, cassandra_outage))
    plan.sort(key=lambda step: step[1])

    deadline = time.monotonic() + 40 * 60
    while True:
        progress.update()
        for step in [s for s in plan if progress.fraction(s[0]) >= s[1]]:
            plan.remove(step)
            step[2]()
        if not plan and progress.terminal_count == N:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out: {progress.terminal_count}/{N} terminal, steps left {plan}, "
                f"deaths {supervisor.deaths}"
            )
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    time.sleep(3)  # anything sent or published twice shows up by now
    smtp.on_message(None)
    codes = supervisor.stop()
    events.stop()
    progress.update()

    # Every recipient: exactly one terminal event (republished copies share its event_id).
    run = outcome(progress.mine, smtp, universe.tag)
    duplicates, first_at = run.duplicates, run.first_at
    sender_deaths = [d.at for d in supervisor.deaths if d.module == "services.sender"]
    unexplained = [
        mid
        for mid in duplicates
        if not any(
            -IN_FLIGHT_WINDOW_S <= first_at[mid] - t <= RECORDED_AFTER_KILL_S for t in sender_deaths
        )
    ]
    kills = Counter((d.module, d.cause) for d in supervisor.deaths)
    with capsys.disabled():
        print(
            f"\nchaos: {N} messages in {elapsed:.0f}s; lost={run.lost(N)}; "
            f"recipients with other than one terminal event={len(run.not_one)}; "
            f"terminal types={dict(run.types)}; republished terminal events={run.republished}; "
            f"delivered at SMTP={len(run.copies)} distinct, duplicates={sum(duplicates.values())} "
            f"({len(unexplained)} not explained by a sender death); "
            f"deaths={dict(kills)}; restarts={dict(supervisor.restarts)} "
            f"(of services that exited on their own: {len(supervisor.exits)}); "
            f"outages={ {k: round(v, 1) for k, v in outages.items()} }"
        )
    assert run.lost(N) == 0
    assert not run.not_one
    assert run.types == Counter({"DELIVERED": N + run.republished})
    assert len(run.copies) == N
    assert not unexplained, [
        (mid, [round(first_at[mid] - t, 3) for t in sender_deaths]) for mid in unexplained[:10]
    ]
    for module in SERVICES:
        assert sum(n for (m, _), n in kills.items() if m == module) >= KILLS_EACH, kills
    assert kills[("services.sender", "sigkill-at-250")] >= 1, kills
    assert set(outages) == {"kafka restart", "cassandra down"}
    # Every restart was of a service the test killed: the outages took none down.
    assert not supervisor.exits, supervisor.exits
    assert all(code == 0 for code in codes.values()), codes
