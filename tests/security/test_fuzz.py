"""A generative end-to-end fuzz test against the session's real stack and services.

Hypothesis draws N EmailRequested records (tests/security/fuzz_requests.py; 2,000 by default)
over every field: message ids, tenants, senders, display names, up to 120 recipients, subjects
and bodies (empty, huge, unicode, CR/LF/NUL), template references and template data of odd
shapes, headers, attachments, tags and times. The project's serde encodes them (so records that
are invalid yet encodable go out as they are) and the project's client publishes them to all
three priority topics, a few twice. Then, within a bound:

- every request ends: one request-level REJECTED, or one terminal event per recipient, or a
  dead letter on email.requested.dlq;
- no recipient has two terminal events, and no event names a recipient the request did not;
- no service process exited (nor restarted);
- every message the SMTP server captured holds no header, recipient, address or SMTP command
  that was not validated (tests/security/wire.py, the corpus's checks, part headers too).

The figures (requests, outcomes by type and reason, dead letters, records quarantined to
mailstream.internal.dlq, process restarts, times) are printed. MAILSTREAM_FUZZ_SEED picks the
seed (the same seed draws the same requests), MAILSTREAM_FUZZ_REQUESTS the count.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.client import EmailClient
from services.common.avro.records import EmailEvent
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from tests.integration.harness import RecordingSmtp, ServiceProcess, TopicCollector, mailstream
from tests.security.crashes import crash_evidence, logged, trail
from tests.security.fuzz_outcomes import (
    Fuzzed,
    FuzzRun,
    examples,
    figures,
    finish,
    fitted,
    slowest,
)
from tests.security.fuzz_requests import Draft, generate_isolated, label_universe
from tests.security.fuzz_values import SUPPRESSED
from tests.security.wire import inspect_wire

N = int(os.environ.get("MAILSTREAM_FUZZ_REQUESTS", "2000"))
SEED = int(os.environ.get("MAILSTREAM_FUZZ_SEED", "20261204"))
SETTLE_BOUND_S = 480.0  # last publish -> every request ended
AFTER_DEATH_S = 20.0  # once a service is dead, what else still ends does so within this
GRACE_S = 3.0  # after settling: time for a duplicate event or message to show up
CLOCK_SKEW_MS = 5000  # an event of this run is no older than its publication, less this
RECORD_LIMIT = 1_040_000  # bytes: under the broker's message.max.bytes (1 MiB by default)

# It runs after the ordinary tests of a session (while product bugs remain it can take a
# shared service down, and it keeps the pipeline busy for minutes), but before the tests that
# leave a backlog: its bulk mail would wait behind their 20,000 bulk retries, and its bound
# on when every request ends would measure their backlog, not the fuzz.
pytestmark = [pytest.mark.busy, pytest.mark.timeout(1200)]

_OTP = """
  - tenant: {tenant}
    name: fuzz-otp
    locale: en
    default_locale: en
    required: [code]
    subject: "Your code is {{{{ code }}}}"
    text: "Hello {{{{ name | default('there') }}}}, your code is {{{{ code }}}}.{extra}"
    html: "<p>Hello {{{{ name | default('there') }}}}, your code is <b>{{{{ code }}}}</b>.</p>"
"""
TEMPLATES_V1 = (
    "templates:"
    + _OTP.format(tenant="acme", extra="")
    + _OTP.format(tenant="other", extra="")
    + """
  - tenant: acme
    name: fuzz-otp
    locale: pt
    default_locale: en
    required: [code]
    subject: "Seu código é {{ code }}"
    text: "Olá {{ name | default('você') }}, seu código é {{ code }}."
  - tenant: acme
    name: fuzz-list
    locale: en
    default_locale: en
    required: [title]
    subject: "{{ title }}"
    text: "{% for item in items | default([]) %}- {{ item }}\\n{% endfor %}"
  - tenant: acme
    name: fuzz-html
    locale: en
    default_locale: en
    subject: "html {{ n | default(0) }}"
    html: "<div>{{ body | default('') }}</div>"
"""
)
TEMPLATES_V2 = "templates:" + _OTP.format(tenant="acme", extra=" (v2)")


@functools.cache
def drafts(seed: int, n: int) -> tuple[Draft, ...]:
    return tuple(generate_isolated(seed, n))


def digest(serde: RecordSerde, batch: tuple[Draft, ...]) -> str:
    """A fingerprint of what a seed drew: the same in every run for the same seed."""
    h = hashlib.sha256()
    empty = False
    for i, draft in enumerate(batch):
        request = finish(draft, index=i, run="digest", now_ms=0, empty_taken=empty)
        empty = empty or request.message_id == ""
        h.update(serde.encode(request))
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The run


def _apply(env: dict[str, str], folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    applied = mailstream(env, "templates", "apply", "-f", str(path))
    assert applied.returncode == 0, f"fuzz templates not applied: {applied.stderr[-2000:]}"


def _key(inbound: Inbound) -> str:
    return (inbound.key or b"").decode("utf-8", "replace")


@pytest.fixture(scope="module")
def quarantine(
    settings: CommonSettings, topics: Topics, provisioned: None
) -> Iterator[TopicCollector]:
    collector = TopicCollector(
        kafka=settings.kafka,
        topics=[topics.internal_dlq],
        group_id=f"test-quarantine-{uuid.uuid4().hex[:6]}",
        decode=lambda m: m,
    )
    collector.start()
    yield collector
    collector.stop()


@pytest.fixture(scope="module")
def fuzz_run(
    env: dict[str, str],
    services: dict[str, ServiceProcess],
    events: TopicCollector,
    dlq: TopicCollector,
    quarantine: TopicCollector,
    client: EmailClient,
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path_factory: pytest.TempPathFactory,
) -> FuzzRun:
    folder = tmp_path_factory.mktemp("fuzz")
    _apply(env, folder, "templates-v1.yaml", TEMPLATES_V1)
    _apply(env, folder, "templates-v2.yaml", TEMPLATES_V2)
    added = mailstream(env, "suppressions", "add", "--tenant", "acme", SUPPRESSED)
    assert added.returncode == 0, added.stderr[-2000:]
    pids = {m: p.proc.pid if p.proc else None for m, p in services.items()}

    started = time.monotonic()
    batch = drafts(SEED, N)
    generate_s = time.monotonic() - started
    run, now = uuid.uuid4().hex[:6], time.time_ns() // 1_000_000
    requests: list[Fuzzed] = []
    for i, draft in enumerate(batch):
        empty = any(f.request.message_id == "" for f in requests)
        drawn = finish(draft, index=i, run=run, now_ms=now, empty_taken=empty)
        request = fitted(drawn, serde.encode, RECORD_LIMIT)
        labels = draft.labels | ({"size:cut-to-fit"} if request is not drawn else set())
        value = serde.encode(request)
        repeat = Priority[draft.repeat.upper()] if draft.repeat else None
        priority = Priority[draft.priority.upper()]
        requests.append(Fuzzed(i, request, priority, value, labels, repeat, drawn_ms=now))

    published: Counter[str] = Counter()
    started = time.monotonic()
    for f in requests:
        f.published_ms = time.time_ns() // 1_000_000
        for priority in [f.priority] + ([f.repeat] if f.repeat else []):
            client.publish_raw(f.value, key=f.request.message_id, priority=priority)
            published[priority.value] += 1
    client.flush(180)
    publish_s = time.monotonic() - started

    by_key = {(f.request.message_id, f.request.tenant_id): f for f in requests}
    by_mid = {f.request.message_id: f for f in requests}

    def refresh() -> bool:
        found: dict[int, dict[str, EmailEvent]] = {}
        for e in events.items:
            f = by_key.get((e.message_id, e.tenant_id))
            if f is not None and e.occurred_at >= f.published_ms - CLOCK_SKEW_MS:
                found.setdefault(f.index, {}).setdefault(e.event_id, e)
        for f in requests:
            f.events = list(found.get(f.index, {}).values())
            f.letters = []
            f.quarantined = []
        for letter in dlq.items:
            f = by_mid.get(_key(letter))
            if f is not None and letter.value == f.value:
                f.letters.append(letter)
        for record in quarantine.items:
            f = by_mid.get(_key(record))
            if f is not None:
                f.quarantined.append(record)
        return all(f.settled() for f in requests)

    started = time.monotonic()
    deadline, died_at = started + SETTLE_BOUND_S, None
    while not refresh() and time.monotonic() < deadline:
        if died_at is None and any(not p.alive() for p in services.values()):
            died_at = time.monotonic()
        if died_at is not None and time.monotonic() > died_at + AFTER_DEATH_S:
            break  # nothing more will end through a dead service
        time.sleep(1.0)
    settle_s = time.monotonic() - started
    time.sleep(GRACE_S)
    refresh()
    global_problems = inspect_wire(list(requests), smtp, part_headers=True)
    return FuzzRun(
        requests=requests,
        digest=digest(serde, batch),
        published=published,
        generate_s=generate_s,
        publish_s=publish_s,
        settle_s=settle_s,
        global_problems=global_problems,
        dead=[crash_evidence(p) for p in services.values() if not p.alive()],
        restarted=[m for m, p in services.items() if (p.proc.pid if p.proc else None) != pids[m]],
        quarantined_total=len(quarantine.items),
        quarantine_log=[e for p in services.values() for e in logged(p, "record_quarantined")],
        seed=SEED,
        bound_s=SETTLE_BOUND_S,
        trails={
            f.index: trail(list(services.values()), f.request.message_id)
            for f in [f for f in requests if not f.settled()][:5] + slowest(requests)
        },
    )


# ---------------------------------------------------------------------------------------------
# The tests


def test_figures(fuzz_run: FuzzRun, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():  # the figures belong in the CI log
        print("\n" + "\n".join(figures(fuzz_run)))


def test_no_service_exited_or_restarted(fuzz_run: FuzzRun) -> None:
    assert not fuzz_run.dead, "services exited during the fuzz run:\n" + "\n".join(fuzz_run.dead)
    assert not fuzz_run.restarted, f"services restarted: {fuzz_run.restarted}"


def test_every_request_ended(fuzz_run: FuzzRun) -> None:
    bad = [f for f in fuzz_run.requests if not f.settled()]
    why = {f.index: f"no end: {f.summary()}" for f in bad}
    trails = "\n".join(
        f"#{i} as the services logged it:\n  " + "\n  ".join(lines or ["(nothing)"])
        for i, lines in fuzz_run.trails.items()
    )
    assert not bad, (
        f"{len(bad)} of {len(fuzz_run.requests)} requests did not end within "
        f"{SETTLE_BOUND_S:.0f}s:\n{examples(bad, why)}\n{trails}"
    )


def test_no_recipient_has_two_outcomes(fuzz_run: FuzzRun) -> None:
    why = {f.index: "; ".join(f.problems()[:3]) for f in fuzz_run.requests if f.problems()}
    bad = [f for f in fuzz_run.requests if f.index in why]
    assert not bad, f"{len(bad)} requests with inconsistent outcomes:\n{examples(bad, why)}"


# Checked on its own: a subject that reaches readers in another form than requested (an
# "=?...?=" look-alike decoded, leading or repeated white space folded) is no injection, but
# a defect of its own, which this test found once.
SUBJECT_FIDELITY = "Subject on the wire differs from the requested one"


def _wire_problems(fuzz_run: FuzzRun, *, subject: bool) -> tuple[list[Fuzzed], dict[int, str]]:
    why = {}
    for f in fuzz_run.requests:
        found = sorted({p for p in f.wire if (p == SUBJECT_FIDELITY) == subject})
        if found:
            why[f.index] = "; ".join(found[:3])
    return [f for f in fuzz_run.requests if f.index in why], why


def test_the_wire_holds_only_what_was_validated(fuzz_run: FuzzRun) -> None:
    assert not fuzz_run.global_problems, fuzz_run.global_problems[:10]
    bad, why = _wire_problems(fuzz_run, subject=False)
    assert not bad, f"{len(bad)} requests with problems on the wire:\n{examples(bad, why)}"


def test_every_subject_reaches_the_wire_as_requested(fuzz_run: FuzzRun) -> None:
    bad, why = _wire_problems(fuzz_run, subject=True)
    assert not bad, f"{len(bad)} requests with problems on the wire:\n{examples(bad, why)}"


def test_the_generation_is_seeded_and_covers_every_kind(serde: RecordSerde) -> None:
    """The same seed draws the same requests (a short run, drawn twice, each time in a fresh
    interpreter), and a full run draws every kind of value of every field at least once."""
    short = min(N, 150)
    first, second = (digest(serde, tuple(generate_isolated(SEED, short))) for _ in range(2))
    assert first == second, "the same seed drew different requests"
    drawn = {label for d in drafts(SEED, N) for label in d.labels}
    never = sorted(label_universe() - drawn)
    if N >= 2000:
        assert not never, f"kinds never drawn with seed {SEED}: {never}"
