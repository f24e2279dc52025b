"""What the chaos tests share: a universe of their own (topic prefix, keyspace, tenants), its
four services under an optional supervisor, a progress counter over its events, and what the
SMTP server received of it."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EmailEvent, EventType
from services.common.config import CommonSettings
from services.common.kafka.topics import Topics
from tests.integration.harness import REPO, RecordingSmtp, ServiceProcess, TopicCollector
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
