"""Chaos: one node of a 3-node Cassandra ring at replication factor 3 is stopped for 60 s while
mail arrives at a steady rate, with nobody to restart what dies. At LOCAL_QUORUM two nodes of
three answer every read and write, so every service must stay up, lose nothing, give every
recipient exactly one terminal event and send nothing twice (nothing is killed, so no
duplicate is excused).

The ring (deploy/local/stack up cassandra-ring, beside the shared single node) is the test's
own: it starts it and stops it afterwards. Kafka is the shared one. MAILSTREAM_RING_MESSAGES
sets the message count (3,000 by default).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cassandra.cluster import NoHostAvailable

from services.common.avro.serde import RecordSerde
from services.common.cassandra.session import connect
from services.common.config import CassandraSettings, CommonSettings
from services.common.errors import TransientError
from tests.chaos.universe import (
    Progress,
    Supervisor,
    Universe,
    new_universe,
    outcome,
    publish_run,
    start_run,
)
from tests.chaos.universe import stack as run_stack
from tests.integration.harness import RecordingSmtp, wait_until

N = int(os.environ.get("MAILSTREAM_RING_MESSAGES", "3000"))
# The messages arrive in waves spread over ARRIVAL_S, so that mail flows before the outage,
# during it, and after the node is back (when its hints replay and the drivers reconnect).
ARRIVAL_S = 110.0
WAVES = 55
OUTAGE_AFTER_S = 20.0  # into the arrivals
OUTAGE_S = 60.0
# The seed, and the first contact point of every service.
STOPPED_NODE, STOPPED_ADDRESS = "cassandra-ring-1", "127.0.0.1"
# deploy/local/common.sh's ring: node N on 127.0.0.N, all on one CQL port.
RING_HOSTS = "127.0.0.1,127.0.0.2,127.0.0.3"
RING_PORT = 19142
REPLICATION = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
STATE = Path(os.environ.get("MAILSTREAM_STATE_DIR", Path(__file__).parents[2] / ".state"))

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(900)]


def _stack(*args: str) -> float:
    """Runs deploy/local/stack; how long it took."""
    began = time.monotonic()
    try:
        run_stack(*args)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"stack {' '.join(args)}: {exc.stderr.decode()[-3000:]}") from exc
    return time.monotonic() - began


@pytest.fixture
def ring() -> Iterator[float]:
    """The ring, up; how long it took to start."""
    took = _stack("up", "cassandra-ring")
    yield took
    _stack("down", "cassandra-ring")


@pytest.fixture
def universe(
    ring: float, settings: CommonSettings, env: dict[str, str], tmp_path: Path
) -> Iterator[Universe]:
    """A universe whose keyspace lives on the ring at replication factor 3 (dropped after)."""
    on_ring = settings.cassandra.model_copy(
        update={"hosts": RING_HOSTS, "port": RING_PORT, "replication": REPLICATION}
    )
    made = new_universe(
        settings.model_copy(update={"cassandra": on_ring}),
        env
        | {
            "MAILSTREAM_CASSANDRA__HOSTS": RING_HOSTS,
            "MAILSTREAM_CASSANDRA__PORT": str(RING_PORT),
            "MAILSTREAM_CASSANDRA__REPLICATION": REPLICATION,
        },
        tmp_path,
        name="ring",
    )
    yield made
    cluster, session = connect(made.settings.cassandra)
    try:
        # A schema change flushes every table on all three nodes: slow on 2 busy cores.
        session.execute(f"DROP KEYSPACE IF EXISTS {made.settings.cassandra.keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def _publish_waves(universe: Universe, sent_at: dict[str, float]) -> None:
    """N messages in WAVES waves over ARRIVAL_S; wave k's ids start with the run's tag and k,
    so at_smtp(smtp, universe.tag) still finds them all. sent_at: wave tag -> time.time()."""
    began = time.monotonic()
    for k in range(WAVES):
        time.sleep(max(0.0, began + k * ARRIVAL_S / WAVES - time.monotonic()))
        wave = dataclasses.replace(universe, tag=f"{universe.tag}{k:02d}")
        sent_at[wave.tag] = time.time()
        publish_run(wave, N // WAVES + (k < N % WAVES))


def _exited(supervisor: Supervisor) -> None:
    """Fails at once, with the logs, if a service exited: nothing would restart it."""
    if exits := supervisor.exits:
        logs = {d.module: supervisor.procs[d.module].log_text()[-3000:] for d in exits}
        raise AssertionError(f"services exited (restarts needed: {len(exits)}): {exits}\n{logs}")


def _requests_served(settings: CassandraSettings, address: str) -> int | None:
    """The CQL requests a node has coordinated on the connections open to it now that use the
    keyspace: the services' (this probe's own uses none). None if the node would not say."""
    for attempt in range(1, 6):
        try:
            cluster, session = connect(settings)
        except TransientError:
            time.sleep(2.0 * attempt)
            continue
        try:
            host = next(h for h in cluster.metadata.all_hosts() if h.address == address)
            rows = session.execute(
                "SELECT keyspace_name, request_count FROM system_views.clients", host=host
            )
            return sum(r.request_count or 0 for r in rows if r.keyspace_name == settings.keyspace)
        except NoHostAvailable:  # a busy node can miss this probe's connect timeout
            time.sleep(2.0 * attempt)
        finally:
            cluster.shutdown()
    return None


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


def _ring_rss_mb() -> int:
    """The resident memory of the ring's running nodes together."""
    total = 0
    for n in (1, 2, 3):
        try:
            pid = (STATE / "run" / f"cassandra-ring-{n}.pid").read_text().strip()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
        total += int(rss[0]) if rss else 0
    return total // 1024


def test_one_ring_node_down_for_a_minute_goes_unnoticed(
    ring: float,
    universe: Universe,
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor, events = start_run(universe, serde, tmp_path, restart=False)
    try:
        progress = Progress(events, N)
        sent_at: dict[str, float] = {}
        # "<service> [<failing checks>]": how many /readyz answers were not 200.
        not_ready: Counter[str] = Counter()
        asked = 0

        def watch_until(moment: float) -> None:
            """Until moment: fail if a service exited, and sample every one's readiness."""
            nonlocal asked
            while time.monotonic() < moment:
                _exited(supervisor)
                for module, proc in supervisor.procs.items():
                    status, report = proc.readiness()
                    asked += 1
                    if status != 200:
                        checks = report.get("checks", {})
                        failing = sorted(k for k, c in checks.items() if not c["ok"])
                        not_ready[f"{module.rsplit('.', 1)[-1]} {failing}"] += 1
                time.sleep(max(0.0, min(2.0, moment - time.monotonic())))

        with ThreadPoolExecutor(max_workers=1) as pool:
            started, started_wall = time.monotonic(), time.time()
            publishing = pool.submit(_publish_waves, universe, sent_at)
            watch_until(started + OUTAGE_AFTER_S)
            progress.update()
            at_outage = progress.terminal_count
            # Else the outage would prove nothing: the services must be using the node.
            served_before = _requests_served(universe.settings.cassandra, STOPPED_ADDRESS)
            assert served_before, f"the services sent {STOPPED_NODE} no request ({served_before})"
            stop_s = _stack("down", STOPPED_NODE)
            down_at = time.monotonic()
            watch_until(down_at + OUTAGE_S)
            progress.update()
            during = progress.terminal_count - at_outage
            restart_s = _stack("up", STOPPED_NODE)
            back_at = time.monotonic()
            watch_until(back_at + 5)
            publishing.result(timeout=ARRIVAL_S * 3)

        def all_terminal() -> bool:
            _exited(supervisor)
            progress.update()
            return progress.terminal_count == N

        wait_until("every recipient to reach a terminal event", all_terminal, 300, interval=1.0)
        elapsed = time.monotonic() - started
        served_after = _requests_served(universe.settings.cassandra, STOPPED_ADDRESS)
        time.sleep(3)  # anything sent or published twice shows up by now
        progress.update()
        exits = list(supervisor.exits)
    finally:
        codes = supervisor.stop()
        events.stop()

    run = outcome(progress.mine, smtp, universe.tag)
    latency_ms: list[float] = []
    per_10s: Counter[int] = Counter()  # terminal events by the 10 s since arrivals began
    wave_tag = len(universe.tag) + 2
    first: set[str] = set()
    for event in progress.mine:
        if event.type.terminal and event.message_id not in first:
            first.add(event.message_id)
            latency_ms.append(event.occurred_at - sent_at[event.message_id[:wave_tag]] * 1000)
            per_10s[int(event.occurred_at / 1000 - started_wall) // 10] += 1
    duplicates = sum(run.duplicates.values())
    with capsys.disabled():
        print(
            f"\ncassandra ring: {N} messages over {ARRIVAL_S:.0f}s, all terminal after "
            f"{elapsed:.0f}s; ring up in {ring:.0f}s ({_ring_rss_mb()} MB RSS); "
            f"{STOPPED_NODE} stopped in {stop_s:.1f}s after {at_outage} terminal, down "
            f"{OUTAGE_S:.0f}s with {during} terminal meanwhile, back in {restart_s:.1f}s; "
            f"CQL requests it served: {served_before} before, {served_after} after; "
            f"lost={run.lost(N)}; other than one terminal event={len(run.not_one)}; "
            f"terminal types={dict(run.types)}; duplicates at SMTP={duplicates}; "
            f"republished terminal events={run.republished}; restarts needed={len(exits)}; "
            f"end-to-end p50={_percentile(latency_ms, 50):.0f}ms "
            f"p99={_percentile(latency_ms, 99):.0f}ms max={max(latency_ms, default=0):.0f}ms; "
            f"/readyz not 200 in {sum(not_ready.values())} of {asked} answers: "
            f"{dict(not_ready)}\n"
            f"  node down {down_at - started:.0f}-{back_at - restart_s - started:.0f}s, "
            f"starting until {back_at - started:.0f}s; terminal per 10 s: "
            f"{[per_10s[k] for k in range(max(per_10s, default=0) + 1)]}"
        )
    assert not exits, exits
    assert run.lost(N) == 0
    assert not run.not_one, list(run.not_one.items())[:10]
    assert run.types == Counter({"DELIVERED": N + run.republished})
    assert len(run.copies) == N
    assert duplicates == 0, list(run.duplicates)[:10]
    assert all(code == 0 for code in codes.values()), codes
