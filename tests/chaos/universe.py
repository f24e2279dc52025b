"""What the chaos tests share: a universe of their own (topic prefix, keyspace, tenants), its
four services under an optional supervisor, a progress counter over its events, and what the
SMTP server received of it."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EmailEvent, EventType
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.kafka.topics import Topics
from tests.integration.harness import (
    REPO,
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    wait_until,
)
from tests.stack import SERVICES, provision

UNSUBSCRIBE = {"List-Unsubscribe": "<https://acme.mailstream.test/unsubscribe/chaos>"}


@dataclass(frozen=True)
class Universe:
    """A topic prefix and keyspace of the run's own, provisioned with the test tenants."""

    settings: CommonSettings
    env: dict[str, str]
    topics: Topics
    tag: str  # every message id of the run starts with it


def new_universe(
    settings: CommonSettings, env: dict[str, str], folder: Path, *, name: str = "chaos"
) -> Universe:
    run = uuid.uuid4().hex[:8]
    prefix, keyspace = f"{name}{run}.", f"{name}_{run}"
    chaos_env = env | {
        "MAILSTREAM_KAFKA__TOPIC_PREFIX": prefix,
        "MAILSTREAM_CASSANDRA__KEYSPACE": keyspace,
    }
    chaos = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": prefix}),
            "cassandra": settings.cassandra.model_copy(update={"keyspace": keyspace}),
        }
    )
    provision(chaos, chaos_env, folder / "tenants")
    return Universe(
        settings=chaos,
        env=chaos_env,
        topics=Topics(prefix, chaos.delay_tiers_s),
        tag=f"{name}-{run}-",
    )


def publish_run(universe: Universe, n: int, *, per_second: float | None = None) -> None:
    """n one-recipient messages, the priorities in turn, each to its own inbox address; all
    at once, or paced at per_second (so every stage has work throughout the run)."""
    priorities = (Priority.TRANSACTIONAL, Priority.BULK, Priority.CRITICAL)
    began = time.monotonic()
    with EmailClient(kafka=universe.settings.kafka) as client:
        for i in range(n):
            if per_second is not None and i % 50 == 0:
                time.sleep(max(0.0, began + i / per_second - time.monotonic()))
            priority = priorities[i % 3]
            client.send(
                new_request(
                    tenant_id="acme",
                    from_address="hello@acme.mailstream.test",
                    to=f"user{i}@inbox.mailstream.test",
                    message_id=f"{universe.tag}{i:05d}",
                    subject=f"chaos {universe.tag}{i:05d}",
                    text_body="x",
                    headers=UNSUBSCRIBE if priority is Priority.BULK else {},
                ),
                priority=priority,
                wait=False,
            )
        client.flush()


def at_smtp(smtp: RecordingSmtp, tag: str) -> tuple[Counter[str], dict[str, float]]:
    """How many copies of each of the run's messages the SMTP server received, and when the
    first copy of each came."""
    copies: Counter[str] = Counter()
    first_at: dict[str, float] = {}
    pattern = re.compile(rb"chaos (" + re.escape(tag.encode()) + rb"\d+)")
    for m in smtp.messages:
        match = pattern.search(m.data)
        if match:
            mid = match.group(1).decode()
            copies[mid] += 1
            first_at.setdefault(mid, m.at)
    return copies, first_at


def stack(*args: str) -> None:
    """deploy/local/stack ARGS; a failure names the command and the end of its output."""
    done = subprocess.run(
        [str(REPO / "deploy" / "local" / "stack"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"stack {' '.join(args)}: {done.stdout[-800:]}{done.stderr[-800:]}"


@dataclass
class Death:
    module: str
    at: float
    cause: str  # "sigkill", "sigkill-at-250" or "exit <code>"


@dataclass
class Supervisor:
    """Keeps the four services running: whatever exits is started again a second later, as
    an orchestrator would (restart=False: it is only recorded, and stays down)."""

    env: dict[str, str]
    logs: Path
    restart: bool = True
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    deaths: list[Death] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _down: set[str] = field(default_factory=set)

    def start(self) -> None:
        for module in SERVICES:
            self.procs[module] = self._spawn(module)
        threading.Thread(target=self._watch, daemon=True).start()

    def _spawn(self, module: str) -> ServiceProcess:
        proc = ServiceProcess(module=module, env=self.env, log_path=self.logs / f"{module}.log")
        proc.start()
        return proc

    def kill(self, module: str, cause: str = "sigkill") -> None:
        with self._lock:
            proc = self.procs[module]
            if not proc.alive():
                return
            self.deaths.append(Death(module, time.time(), cause))
            proc.kill()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                for module, proc in self.procs.items():
                    if proc.alive() or module in self._down:
                        continue
                    assert proc.proc is not None
                    code = proc.proc.returncode
                    if code != -9:  # a SIGKILL of ours is already recorded
                        self.deaths.append(Death(module, time.time(), f"exit {code}"))
                    if not self.restart:
                        self._down.add(module)
                        continue
                    self.restarts[module] += 1
                    self.procs[module] = self._spawn(module)

    @property
    def exits(self) -> list[Death]:
        """Deaths the test did not cause: a service that exited on its own."""
        return [d for d in self.deaths if d.cause.startswith("exit")]

    def consuming(self) -> bool:
        with self._lock:
            return all(
                p.count_in_log("partitions_assigned") >= SERVICES[m] for m, p in self.procs.items()
            )

    def stop(self) -> dict[str, int | None]:
        self._stop.set()
        with self._lock:
            return {m: p.stop() for m, p in self.procs.items()}


class Progress:
    """Counts this run's accepted and terminal recipients as events arrive."""

    def __init__(self, events: TopicCollector, n: int) -> None:
        self._events = events
        self._n = n
        self._seen = 0
        self.mine: list[EmailEvent] = []
        self._accepted: set[str] = set()
        self._terminal: set[str] = set()

    def update(self) -> None:
        items = self._events.items
        for event in items[self._seen :]:
            self.mine.append(event)
            if event.type is EventType.ACCEPTED:
                self._accepted.add(event.message_id)
            elif event.type.terminal:
                self._terminal.add(event.message_id)
        self._seen = len(items)

    @property
    def terminal_count(self) -> int:
        return len(self._terminal)

    def fraction(self, kind: str) -> float:
        return len(self._accepted if kind == "accepted" else self._terminal) / self._n


def start_run(
    universe: Universe,
    serde: RecordSerde,
    logs: Path,
    *,
    restart: bool = True,
    session_services: dict[str, ServiceProcess] | None = None,
) -> tuple[Supervisor, TopicCollector]:
    """The universe's four services under a supervisor, consuming, and a collector of its
    events. The session's own services, if given, are stopped first (cleanly: each must exit
    0), since they would only get in the way of the outages."""
    if session_services is not None:
        codes = {module: proc.stop() for module, proc in session_services.items()}
        assert all(code == 0 for code in codes.values()), codes
    supervisor = Supervisor(env=universe.env, logs=logs, restart=restart)
    supervisor.start()
    try:
        wait_until("the services to be consuming", supervisor.consuming, 120)
    except BaseException:
        supervisor.stop()
        raise
    return supervisor, collect_events(universe, serde)


def collect_events(universe: Universe, serde: RecordSerde) -> TopicCollector:
    """A started collector of the universe's public events."""
    events = TopicCollector(
        kafka=universe.settings.kafka,
        topics=[universe.topics.events],
        group_id=f"events-{universe.tag}",
        decode=lambda m: serde.decode(EmailEvent, m.value),
    )
    events.start()
    return events


@dataclass(frozen=True)
class Outcome:
    """What became of a run's messages, by their terminal events and at the SMTP server."""

    terminal_ids: dict[str, set[str]]  # message id -> its distinct terminal event ids
    types: Counter[str]  # terminal events by type, republished copies included
    copies: Counter[str]  # message id -> copies the SMTP server received
    first_at: dict[str, float]  # message id -> when its first copy arrived

    def lost(self, n: int) -> int:
        return n - len(self.terminal_ids)

    @property
    def not_one(self) -> dict[str, set[str]]:
        """Messages with other than one terminal event (copies of one share its event id)."""
        return {mid: ids for mid, ids in self.terminal_ids.items() if len(ids) != 1}

    @property
    def republished(self) -> int:
        return sum(self.types.values()) - len(self.terminal_ids)

    @property
    def duplicates(self) -> dict[str, int]:
        """Message id -> copies beyond the first the SMTP server received."""
        return {mid: n - 1 for mid, n in self.copies.items() if n > 1}


def outcome(events: list[EmailEvent], smtp: RecordingSmtp, tag: str) -> Outcome:
    terminal_ids: dict[str, set[str]] = defaultdict(set)
    types: Counter[str] = Counter()
    for event in events:
        if event.type.terminal:
            terminal_ids[event.message_id].add(event.event_id)
            types[event.type.value] += 1
    copies, first_at = at_smtp(smtp, tag)
    return Outcome(dict(terminal_ids), types, copies, first_at)
