"""The bad-input corpus (tests/security/corpus/*.yaml) through the real stack.

Every case is published in one batch; each must end as its expected REJECTED event, dead
letter, bounce or delivery within a bounded time, never crash a service, and nothing it
injects may reach the bytes the SMTP server captured. Cases known to crash or stall a service
(`isolate: true`) run alone, one after another, in throwaway copies of the pipeline, so they
cannot take the shared stack down; their evidence (the service's exception) is in the failure.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from fastavro.schema import fingerprint

from services.client import EmailClient, Priority
from services.common.avro.records import (
    Attachment,
    EmailEvent,
    EmailRequested,
    EventType,
    Recipient,
    TemplateRef,
)
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.kafka import headers as kafka_headers
from services.common.kafka.admin import create_topics
from services.common.kafka.records import Inbound
from services.common.kafka.settings import admin_config, producer_config
from services.common.kafka.topics import Topics
from tests.integration.harness import (
    REPO,
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    mailstream,
    wait_until,
)
from tests.security.crashes import crash_evidence
from tests.security.wire import inspect_wire
from tests.stack import SERVICES

CORPUS = Path(__file__).parent / "corpus"
SENDER = "hello@acme.mailstream.test"
GOOD = "good@inbox.mailstream.test"
BATCH_BOUND_S = 60.0  # publish -> last terminal event, with the whole batch in flight at once
ALONE_BOUND_S = 8.0  # the same for an isolated case, alone in its own pipeline
GRACE_S = 2.0  # after settling: time for a duplicate or smuggled message to show up


# ---------------------------------------------------------------------------------------------
# The corpus as data


@dataclass(frozen=True)
class Expect:
    rejected: str | None = None  # the whole request: one REJECTED event with no recipient
    recipients: tuple[tuple[str, str], ...] = ()  # (event recipient, "TYPE reason")
    dlq: str | None = None  # a dead letter whose error.message holds this text
    normalized: str | None = None  # why a delivered form is safe (required for deliveries)
    body_contains: tuple[str, ...] = ()
    body_lacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    why: str
    source: str
    expect: Expect
    priority: Priority = Priority.TRANSACTIONAL
    request: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    template: dict[str, Any] | None = None
    xfail: str | None = None
    isolate: bool = False

    @property
    def template_name(self) -> str:
        return str((self.template or {}).get("name", f"sec-{self.id}"))


def _expand(value: Any) -> Any:
    """Directives keep huge or repetitive payloads short in the YAML files."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, dict) and "$seq" in item:
                out += [item["$seq"].replace("{i}", str(i)) for i in range(item["count"])]
            elif isinstance(item, dict) and "$each" in item:
                out += [_expand(item["$each"]) for _ in range(item["count"])]
            else:
                out.append(_expand(item))
        return out
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return _expand(value["$repeat"]) * value["times"]
    if "$concat" in value:
        return "".join(_expand(part) for part in value["$concat"])
    if "$json" in value:
        return json.dumps(_expand(value["$json"]))
    if "$seq" in value:
        return [value["$seq"].replace("{i}", str(i)) for i in range(value["count"])]
    if "$dict" in value:  # {$dict: "X-H{i}", count: N, value: V}
        return {
            value["$dict"].replace("{i}", str(i)): value["value"] for i in range(value["count"])
        }
    return {k: _expand(v) for k, v in value.items()}


def _parse_case(raw: dict[str, Any], source: str) -> Case:
    expect_raw = raw.get("expect") or {}
    recipients: list[tuple[str, str]] = []
    if expect_raw.get("delivered") is True:
        recipients.append((GOOD, "DELIVERED"))
    if "recipient_rejected" in expect_raw:  # the default recipient, rejected by the router
        recipients.append((GOOD, f"REJECTED {expect_raw['recipient_rejected']}"))
    for address, outcome in expect_raw.get("recipients", []):
        expanded = _expand(address)
        for one in expanded if isinstance(expanded, list) else [expanded]:
            recipients.append((one, outcome))
    expect = Expect(
        rejected=expect_raw.get("rejected"),
        recipients=tuple(recipients),
        dlq=expect_raw.get("dlq"),
        normalized=expect_raw.get("normalized"),
        body_contains=tuple(expect_raw.get("body_contains", ())),
        body_lacks=tuple(expect_raw.get("body_lacks", ())),
    )
    case = Case(
        id=raw["id"],
        category=raw["category"],
        why=raw.get("why", ""),
        source=source,
        expect=expect,
        priority=Priority[raw.get("priority", "transactional").upper()],
        request=_expand(raw["request"]) if "request" in raw else None,
        raw=_expand(raw["raw"]) if "raw" in raw else None,
        template=raw.get("template"),
        xfail=raw.get("xfail"),
        isolate=bool(raw.get("isolate", False)),
    )
    kinds = [expect.rejected is not None, bool(expect.recipients), expect.dlq is not None]
    assert sum(kinds) == 1, f"{case.id}: expect exactly one of rejected, recipients, dlq"
    if any(o == "DELIVERED" for _, o in expect.recipients):
        assert expect.normalized, f"{case.id}: a delivery needs a `normalized` note"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{2,60}", case.id), f"bad case id {case.id!r}"
    return case


def load_corpus() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            cases.append(_parse_case(raw, path.name))
    return cases


CASES = load_corpus()


# ---------------------------------------------------------------------------------------------
# Building what each case publishes


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _token(token: dict[str, Any], mid: str) -> bytes:
    if "long" in token:
        return _zigzag(int(token["long"]))
    if "str" in token:
        data = str(token["str"]).replace("$MID", mid).encode()
        return _zigzag(len(data)) + data
    if "str_hex" in token:
        data = bytes.fromhex(token["str_hex"])
        return _zigzag(len(data)) + data
    if "declared" in token:  # a length prefix that lies about what follows
        return _zigzag(int(token["declared"])) + bytes.fromhex(token.get("hex", ""))
    if "hex" in token:
        return bytes.fromhex(token["hex"])
    raise AssertionError(f"unknown token {token}")


def _standard_fields(mid: str, requested_at: int) -> list[tuple[str, bytes]]:
    """The default valid request, field by field, encoded by hand (checked against the codec
    once per run, so a schema change fails loudly instead of skewing the crafted cases)."""

    def s(text: str) -> bytes:
        return _token({"str": text}, mid)

    nothing = _zigzag(0)
    return [
        ("message_id", s(mid)),
        ("tenant_id", s("acme")),
        ("from_address", s(SENDER)),
        ("from_name", nothing),
        ("reply_to", nothing),
        ("to", _zigzag(1) + s(GOOD) + nothing + nothing),
        ("cc", nothing),
        ("bcc", nothing),
        ("subject", _zigzag(1) + s("corpus raw")),
        ("text_body", _zigzag(1) + s("raw")),
        ("html_body", nothing),
        ("template", nothing),
        ("template_data_json", nothing),
        ("headers", nothing),
        ("attachments", nothing),
        ("tags", nothing),
        ("expires_at", nothing),
        ("send_at", nothing),
        ("requested_at", _zigzag(requested_at)),
    ]


def _standard_request(mid: str, requested_at: int) -> EmailRequested:
    return EmailRequested(
        message_id=mid,
        tenant_id="acme",
        from_address=SENDER,
        to=[Recipient(GOOD)],
        requested_at=requested_at,
        subject="corpus raw",
        text_body="raw",
    )


class Builder:
    """Turns a case into the EmailRequested or the raw bytes it publishes."""

    def __init__(self, *, serde: RecordSerde, registry: SchemaRegistry, run: str) -> None:
        self.serde = serde
        self.registry = registry
        self.run = run
        self.now = time.time_ns() // 1_000_000

    def mid(self, case: Case) -> str:
        return f"{self.run}.{case.id}"

    def _fingerprint(self, how: str) -> bytes:
        current = self.registry.current("mailstream.v1.EmailRequested")
        fp = current.fingerprint
        if how == "zero":
            return bytes(8)
        if how == "ff":
            return b"\xff" * 8
        if how == "flip":
            return bytes([fp[0] ^ 1]) + fp[1:]
        if how == "reverse":
            return fp[::-1]
        if how == "raw_json_crc":  # CRC-64-AVRO of the file text, not the canonical form
            text = current.source.read_text()
            return bytes.fromhex(fingerprint(text, "CRC-64-AVRO"))
        if how == "md5":
            return hashlib.md5(current.source.read_bytes()).digest()[:8]
        return self.registry.current(how).fingerprint  # another record type's

    def raw(self, case: Case) -> bytes | None:
        spec = case.raw or {}
        mid = self.mid(case)
        if spec.get("null"):
            return None
        if "text" in spec:
            return str(spec["text"]).replace("$MID", mid).encode()
        if "hex" in spec:
            return bytes.fromhex(spec["hex"])
        if "random" in spec:  # deterministic noise of that many bytes
            seed = hashlib.sha256(case.id.encode()).digest()
            out = bytearray()
            while len(out) < spec["random"]:
                seed = hashlib.sha256(seed).digest()
                out += seed
            return bytes(out[: spec["random"]])
        if "record" in spec:
            event = EmailEvent(
                event_id="e",
                message_id=mid,
                tenant_id="acme",
                priority=Priority.CRITICAL,
                type=EventType.DELIVERED,
                occurred_at=self.now,
                attempt=1,
                recipient=GOOD,
            )
            return self.serde.encode(event)
        header = b"\xc3\x01" + self.registry.current("mailstream.v1.EmailRequested").fingerprint
        fields = _standard_fields(mid, self.now)
        if "crafted" in spec:
            replaced = dict(spec["crafted"])
            body = b""
            for name, encoded in fields:
                body += (
                    b"".join(_token(t, mid) for t in replaced[name])
                    if name in replaced
                    else encoded
                )
                if spec.get("cut_after") == name:
                    break
            value = header + body
        else:
            value = self.serde.encode(_standard_request(mid, self.now))
        for step in spec.get("transform", []):
            value = self._transform(value, step, mid)
        return value

    def _transform(self, value: bytes, step: dict[str, Any], mid: str) -> bytes:
        (what, arg), *_ = step.items()
        if what == "magic":
            return bytes.fromhex(arg) + value[2:]
        if what == "fingerprint":
            return value[:2] + self._fingerprint(arg) + value[10:]
        if what == "truncate":
            return value[:arg]  # a negative count cuts from the end
        if what == "cut_after_text":
            at = value.index(arg.encode())
            return value[: at + len(arg.encode())]
        if what == "append_hex":
            return value + bytes.fromhex(arg)
        if what == "append_text":
            return value + arg.encode()
        if what == "append_valid":
            return value + self.serde.encode(_standard_request(mid + "-2", self.now))
        if what == "prepend_hex":
            return bytes.fromhex(arg) + value
        if what == "body_only":
            return value[10:]
        if what == "wrap":
            if arg == "gzip":
                return gzip.compress(value)
            if arg == "base64":
                return base64.b64encode(value)
            if arg == "hex":
                return value.hex().encode()
            if arg == "confluent":  # magic 0, a 4-byte schema id, then the body
                return b"\x00\x00\x00\x00\x01" + value[10:]
        raise AssertionError(f"unknown transform {step}")

    def request(self, case: Case) -> EmailRequested:
        fields: dict[str, Any] = {
            "message_id": self.mid(case),
            "tenant_id": "acme",
            "from_address": SENDER,
            "to": [GOOD],
            "subject": f"corpus {case.id}",
            "text_body": f"corpus case {case.id}",
            "requested_at": self.now,
        }
        if case.template is not None:
            fields["text_body"] = None
            fields["subject"] = None
            fields["template"] = {"name": case.template_name}
        overrides = _replace_mid(dict(case.request or {}), self.mid(case))
        size = overrides.pop("encoded_size", None)
        data = overrides.pop("template_data", None)
        fields.update(overrides)
        if data is not None:
            fields["template_data_json"] = json.dumps(data)
        for key in ("to", "cc", "bcc"):
            fields[key] = [_recipient(r) for r in fields.get(key, [])]
        if isinstance(fields.get("template"), dict):
            fields["template"] = TemplateRef(**fields["template"])
        fields["attachments"] = [
            Attachment(
                filename=a["filename"],
                content_type=a["content_type"],
                content=str(a.get("content", "")).encode(),
            )
            for a in fields.get("attachments", [])
        ]
        request = EmailRequested(**fields)
        if size is not None:
            request = self._pad_to(request, int(size))
        return request

    def _pad_to(self, request: EmailRequested, size: int) -> EmailRequested:
        """Grows text_body until the encoded request is exactly `size` bytes."""
        for _ in range(5):
            missing = size - len(self.serde.encode(request))
            if missing == 0:
                return request
            body = request.text_body or ""
            body = body + "a" * missing if missing > 0 else body[:missing]
            request = dataclasses.replace(request, text_body=body)
        raise AssertionError(f"could not pad the request to exactly {size} bytes")


def _replace_mid(value: Any, mid: str) -> Any:
    if isinstance(value, str):
        return value.replace("$MID", mid)
    if isinstance(value, list):
        return [_replace_mid(v, mid) for v in value]
    if isinstance(value, dict):
        return {k: _replace_mid(v, mid) for k, v in value.items()}
    return value


def _recipient(value: Any) -> Recipient:
    if isinstance(value, str):
        return Recipient(address=value)
    return Recipient(address=value["address"], name=value.get("name"))


def templates_file(cases: list[Case]) -> str:
    entries = []
    for case in cases:
        if case.template is None:
            continue
        t = case.template
        entries.append(
            {
                "tenant": t.get("tenant", "acme"),
                "name": case.template_name,
                "locale": "en",
                "default_locale": "en",
                "required": t.get("required", []),
                "subject": t.get("subject", f"corpus {case.id}"),
                **({"text": t["text"]} if "text" in t else {}),
                **({"html": t["html"]} if "html" in t else {}),
            }
        )
    return yaml.safe_dump({"templates": entries}, allow_unicode=True, width=1 << 20)


# ---------------------------------------------------------------------------------------------
# What happened to each case


@dataclass
class Outcome:
    case: Case
    mid: str
    published_ms: int
    request: EmailRequested | None = None
    value: bytes | None = None
    key: bytes | None = None
    topic: str = ""
    events: list[EmailEvent] = field(default_factory=list)
    letters: list[Inbound] = field(default_factory=list)
    crash: str | None = None
    stalled: bool = False
    universe: str = "shared"
    messages: int = 0
    wire: list[str] = field(default_factory=list)

    @property
    def priority(self) -> Priority:
        return self.case.priority

    @property
    def body_contains(self) -> tuple[str, ...]:
        return self.case.expect.body_contains

    @property
    def body_lacks(self) -> tuple[str, ...]:
        return self.case.expect.body_lacks

    @property
    def terminal_s(self) -> float | None:
        stamps = [e.occurred_at for e in self.events if e.type.terminal]
        stamps += [letter.timestamp_ms for letter in self.letters]
        return (max(stamps) - self.published_ms) / 1000 if stamps else None


def settled(out: Outcome) -> bool:
    if out.case.expect.dlq is not None:
        return bool(out.letters)
    if not out.events:
        return False
    if any(e.type is EventType.REJECTED and e.recipient is None for e in out.events):
        return True
    accepted = {e.recipient for e in out.events if e.type is EventType.ACCEPTED}
    terminal = {e.recipient for e in out.events if e.type.terminal}
    return bool(terminal) and accepted <= terminal


def _case_header(letter: Inbound) -> str | None:
    found = dict(letter.headers).get("corpus.case")
    return found.decode() if found is not None else None


class Publisher:
    """Publishes requests with the client and raw bytes with a bare producer."""

    def __init__(self, *, client: EmailClient, kafka: Any, topics: Topics) -> None:
        self.client = client
        self.topics = topics
        self.producer = Producer(producer_config(kafka))

    def publish(self, out: Outcome) -> None:
        out.published_ms = time.time_ns() // 1_000_000
        out.topic = self.topics.requested(out.case.priority)
        if out.request is not None and out.case.raw is None:
            self.client.send(out.request, priority=out.case.priority, wait=False)
            return
        extra = (out.case.raw or {}).get("kafka_headers", {})
        self.producer.produce(
            out.topic,
            value=out.value,
            key=out.key,
            headers=[("corpus.case", out.case.id.encode())]
            + [(k, str(v).encode()) for k, v in extra.items()],
        )
        self.producer.poll(0)

    def flush(self) -> None:
        self.client.flush(60)
        assert self.producer.flush(60) == 0, "raw records not acknowledged"


# ---------------------------------------------------------------------------------------------
# Throwaway pipelines for the cases that crash or stall a service


class Universe:
    """The four services on a topic prefix of their own (the session's keyspace, tenants,
    templates and SMTP server), thrown away once one of them crashes or stalls."""

    def __init__(
        self, *, settings: CommonSettings, env: dict[str, str], serde: RecordSerde, folder: Path
    ) -> None:
        self.name = f"sq{uuid.uuid4().hex[:6]}"
        self.kafka = settings.kafka.model_copy(update={"topic_prefix": f"{self.name}."})
        self.topics = Topics(self.kafka.topic_prefix, settings.delay_tiers_s)
        create_topics(self.kafka, self.topics)
        env = env | {"MAILSTREAM_KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix}
        self.procs = {
            m: ServiceProcess(module=m, env=env, log_path=folder / f"{self.name}-{m}.log")
            for m in SERVICES
        }
        for proc in self.procs.values():
            proc.start()
        self.events = TopicCollector(
            kafka=self.kafka,
            topics=[self.topics.events],
            group_id=f"{self.name}-events",
            decode=lambda m: serde.decode(EmailEvent, m.value),
        )
        self.events.start()
        self.client = EmailClient(kafka=self.kafka)
        wait_until(
            f"services of {self.name}",
            lambda: (
                all(
                    p.count_in_log("partitions_assigned") >= SERVICES[m]
                    for m, p in self.procs.items()
                )
                or bool(self.dead())
            ),
            90,
        )

    def dead(self) -> list[str]:
        return [crash_evidence(p) for p in self.procs.values() if not p.alive()]

    def close(self, *, kill: bool) -> None:
        self.events.stop()
        for proc in self.procs.values():
            if proc.alive():
                if kill:
                    proc.kill()
                else:
                    proc.stop(20)
        admin = AdminClient(admin_config(self.kafka))
        deleting = admin.delete_topics([s.name for s in self.topics.specs(self.kafka)])
        for future in deleting.values():
            # A leftover topic under a throwaway prefix harms nothing.
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def run_isolated(
    outcomes: list[Outcome],
    *,
    settings: CommonSettings,
    env: dict[str, str],
    serde: RecordSerde,
    folder: Path,
) -> int:
    """One case at a time; a fresh pipeline after each crash or stall. Returns how many
    pipelines were started."""
    universe: Universe | None = None
    started = 0
    try:
        for out in outcomes:
            if universe is None:
                universe = Universe(settings=settings, env=env, serde=serde, folder=folder)
                started += 1
            assert out.request is not None
            out.universe = universe.name
            out.topic = universe.topics.requested(out.case.priority)
            out.published_ms = time.time_ns() // 1_000_000
            universe.client.send(out.request, priority=out.case.priority)
            deadline = time.monotonic() + ALONE_BOUND_S
            while time.monotonic() < deadline:
                out.events = [e for e in universe.events.items if e.message_id == out.mid]
                if settled(out) or universe.dead():
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            out.events = [e for e in universe.events.items if e.message_id == out.mid]
            crashed = universe.dead()
            if crashed:
                out.crash = "; ".join(crashed)
            elif not settled(out):
                out.stalled = True
            if crashed or out.stalled:
                universe.close(kill=True)
                universe = None
    finally:
        if universe is not None:
            universe.close(kill=False)
    return started


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class CorpusRun:
    outcomes: dict[str, Outcome]
    global_problems: list[str]
    universes: int
    batch_s: float
    isolated_s: float


def _check_hand_encoding(builder: Builder) -> None:
    mid = f"{builder.run}.encoding-check"
    hand = b"\xc3\x01" + builder.registry.current("mailstream.v1.EmailRequested").fingerprint
    hand += b"".join(v for _, v in _standard_fields(mid, builder.now))
    assert hand == builder.serde.encode(_standard_request(mid, builder.now)), (
        "the hand-built Avro of the crafted cases no longer matches the schema"
    )


@pytest.fixture(scope="module")
def corpus(
    env: dict[str, str],
    settings: CommonSettings,
    services: dict[str, ServiceProcess],
    events: TopicCollector,
    dlq: TopicCollector,
    client: EmailClient,
    smtp: RecordingSmtp,
    serde: RecordSerde,
    topics: Topics,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CorpusRun]:
    folder = tmp_path_factory.mktemp("corpus")
    builder = Builder(
        serde=serde,
        registry=SchemaRegistry(schemas_dir=REPO / "schemas"),
        run=uuid.uuid4().hex[:6],
    )
    _check_hand_encoding(builder)
    (folder / "templates.yaml").write_text(templates_file(CASES), encoding="utf-8")
    applied = mailstream(env, "templates", "apply", "-f", str(folder / "templates.yaml"))
    assert applied.returncode == 0, f"corpus templates not applied: {applied.stderr[-2000:]}"

    outcomes = {c.id: Outcome(case=c, mid=builder.mid(c), published_ms=0) for c in CASES}
    for out in outcomes.values():
        if out.case.raw is None:
            out.request = builder.request(out.case)
            out.mid = out.request.message_id  # a case may set its own (from $MID)
        else:
            out.value = builder.raw(out.case)
            out.key = bytes.fromhex(out.case.raw["key_hex"]) if "key_hex" in out.case.raw else None
            out.key = out.key if out.key is not None else out.mid.encode()
            if out.case.expect.dlq is None:  # a raw record that is valid after all
                out.request = _standard_request(out.mid, builder.now)
    batch = [o for o in outcomes.values() if not o.case.isolate]
    publisher = Publisher(client=client, kafka=settings.kafka, topics=topics)
    started = time.monotonic()
    for out in batch:
        publisher.publish(out)
    publisher.flush()

    def refresh() -> bool:
        mine = {o.mid: o for o in batch}
        found: dict[str, list[EmailEvent]] = {}
        for event in events.items:
            if event.message_id in mine:
                found.setdefault(event.message_id, []).append(event)
        letters: dict[str, list[Inbound]] = {}
        for letter in dlq.items:
            letters.setdefault(_case_header(letter) or "", []).append(letter)
        for out in batch:
            out.events = found.get(out.mid, [])
            out.letters = letters.get(out.case.id, [])
        return all(settled(o) for o in batch)

    deadline = time.monotonic() + BATCH_BOUND_S
    while not refresh() and time.monotonic() < deadline:
        time.sleep(0.25)
    batch_s = time.monotonic() - started
    time.sleep(GRACE_S)
    refresh()

    isolated_started = time.monotonic()
    universes = run_isolated(
        [o for o in outcomes.values() if o.case.isolate],
        settings=settings,
        env=env,
        serde=serde,
        folder=folder,
    )
    isolated_s = time.monotonic() - isolated_started
    time.sleep(0.5)
    problems = inspect_wire(list(outcomes.values()), smtp)
    yield CorpusRun(outcomes, problems, universes, batch_s, isolated_s)


# ---------------------------------------------------------------------------------------------
# The tests


def test_the_corpus_is_large_and_every_case_distinct() -> None:
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"
    payloads = Counter(
        json.dumps([c.request, c.raw, c.template, c.priority.value], sort_keys=True, default=str)
        for c in CASES
    )
    repeated = [p[:120] for p, n in payloads.items() if n > 1]
    assert not repeated, f"cases with the same payload: {repeated}"


def _outcome_problems(out: Outcome) -> list[str]:
    expect = out.case.expect
    problems: list[str] = []
    if expect.dlq is not None:
        if not out.letters:
            return ["no dead letter"]
        letter = out.letters[0]
        found = dict(letter.headers)
        missing = {
            kafka_headers.ERROR_CLASS,
            kafka_headers.ERROR_MESSAGE,
            kafka_headers.ORIGINAL_TOPIC,
            kafka_headers.ORIGINAL_PARTITION,
            kafka_headers.ORIGINAL_OFFSET,
        } - set(found)
        if missing:
            problems.append(f"dead letter lacks headers {sorted(missing)}")
        if found.get(kafka_headers.ERROR_CLASS) != b"UndecodableRecord":
            problems.append(f"error.class {found.get(kafka_headers.ERROR_CLASS)!r}")
        message = found.get(kafka_headers.ERROR_MESSAGE, b"").decode("utf-8", "replace")
        if expect.dlq.lower() not in message.lower():
            problems.append(f"error.message {message[:200]!r} lacks {expect.dlq!r}")
        if found.get(kafka_headers.ORIGINAL_TOPIC, b"").decode() != out.topic:
            problems.append(f"original.topic {found.get(kafka_headers.ORIGINAL_TOPIC)!r}")
        for name in (kafka_headers.ORIGINAL_PARTITION, kafka_headers.ORIGINAL_OFFSET):
            if not found.get(name, b"").isdigit():
                problems.append(f"{name} {found.get(name)!r} is not a number")
        if letter.value != (out.value or b"") or letter.key != out.key:
            problems.append("the dead letter's bytes or key differ from what was published")
        if len(out.letters) != 1:
            problems.append(f"{len(out.letters)} dead letters")
        if out.events:
            problems.append(f"events for an undecodable record: {_summary(out)}")
        return problems
    if expect.rejected is not None:
        wanted = [("REJECTED", None, expect.rejected)]
        got = [(e.type.value, e.recipient, e.reason) for e in out.events]
        if got != wanted:
            problems.append(f"expected one REJECTED {expect.rejected}, got {_summary(out)}")
        if expect.rejected.startswith("tag") and any(e.tags for e in out.events):
            problems.append("the tags refused are echoed on the event that refuses them")
        return problems
    terminal: dict[str, list[str]] = {}
    for event in out.events:
        if event.type is EventType.REJECTED and event.recipient is None:
            problems.append(f"the whole request was rejected: {event.reason}")
        if event.type.terminal and event.recipient is not None:
            outcome = event.type.value + (f" {event.reason}" if event.reason else "")
            terminal.setdefault(event.recipient, []).append(outcome)
    wanted_by: dict[str, list[str]] = {}
    for address, outcome in expect.recipients:
        wanted_by.setdefault(address, []).append(outcome)
    for address in sorted(set(wanted_by) | set(terminal)):
        if sorted(terminal.get(address, [])) != sorted(wanted_by.get(address, [])):
            problems.append(
                f"{address[:80]!r}: expected {wanted_by.get(address, [])}, "
                f"got {terminal.get(address, [])}"
            )
    return problems[:12]


def _summary(out: Outcome) -> str:
    counts = Counter(f"{e.type.value} {e.reason or ''}".strip() for e in out.events)
    return ", ".join(f"{n}x {k}" for k, n in counts.items()) or "no events"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [],
        )
        for c in CASES
    ],
)
def test_case(case: Case, corpus: CorpusRun) -> None:
    out = corpus.outcomes[case.id]
    where = f"[{case.source} {case.category}: {case.why}] in {out.universe}"
    assert out.crash is None, f"{where}: {out.crash}; events: {_summary(out)}"
    bound = ALONE_BOUND_S if case.isolate else BATCH_BOUND_S
    assert not out.stalled and settled(out), (
        f"{where}: no terminal outcome within {bound:.0f}s (a service is stuck on it); "
        f"events: {_summary(out)}"
    )
    took = out.terminal_s
    assert took is not None and took <= bound, f"{where}: terminal after {took}s > {bound}s"
    problems = _outcome_problems(out)
    assert not problems, f"{where}: " + "; ".join(problems)
    assert not out.wire, f"{where}: on the wire: " + "; ".join(sorted(set(out.wire))[:10])


def test_nothing_smuggled_reached_the_smtp_server(corpus: CorpusRun) -> None:
    assert not corpus.global_problems, corpus.global_problems[:10]


def test_figures(corpus: CorpusRun, capsys: pytest.CaptureFixture[str]) -> None:
    outs = list(corpus.outcomes.values())
    by_category = Counter(o.case.category for o in outs)
    kinds = Counter(
        "dead letter"
        if o.case.expect.dlq
        else "request rejected"
        if o.case.expect.rejected
        else "per recipient"
        for o in outs
    )
    reasons = Counter(
        f"{e.reason}{'' if e.recipient is None else ' (recipient)'}"
        for o in outs
        for e in o.events
        if e.type is EventType.REJECTED
    )
    terminal = Counter(
        e.type.value for o in outs for e in o.events if e.type.terminal and e.recipient
    )
    letters = Counter(
        re.sub(r"[:(].*", "", dict(o.letters[0].headers)[kafka_headers.ERROR_MESSAGE].decode())
        for o in outs
        if o.letters
    )
    timed = [(o.terminal_s, o.case.id) for o in outs if o.terminal_s is not None]
    batch = max((t for t in timed if not corpus.outcomes[t[1]].case.isolate), default=(0, "-"))
    alone = max((t for t in timed if corpus.outcomes[t[1]].case.isolate), default=(0, "-"))
    crashes = Counter(o.crash.split(" ", 1)[0] for o in outs if o.crash)
    wire_bad = [o.case.id for o in outs if o.wire]
    lines = [
        f"security corpus: {len(outs)} cases from {len({o.case.source for o in outs})} files, "
        f"{sum(1 for o in outs if o.case.xfail)} marked as known service bugs (xfail)",
        "  cases by category: " + ", ".join(f"{k} {n}" for k, n in sorted(by_category.items())),
        "  expected outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        "  rejections by reason: "
        + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items(), key=lambda x: -x[1])),
        "  recipient terminal events: " + ", ".join(f"{k} {n}" for k, n in terminal.items()),
        "  dead letters: " + ", ".join(f"{k} {n}" for k, n in letters.items()),
        f"  batch: {len(outs) - sum(o.case.isolate for o in outs)} cases published at once, "
        f"settled in {corpus.batch_s:.1f}s, max time to terminal {batch[0]:.2f}s ({batch[1]})",
        f"  isolated: {sum(o.case.isolate for o in outs)} cases in {corpus.universes} throwaway "
        f"pipelines in {corpus.isolated_s:.1f}s, max time to terminal {alone[0]:.2f}s "
        f"({alone[1]}); crashed {dict(crashes) or 0}, stalled "
        f"{sum(o.stalled for o in outs)}",
        f"  smtp: {sum(o.messages for o in outs)} messages inspected, "
        f"{len(wire_bad)} cases with problems on the wire {wire_bad[:8]}, "
        f"{len(corpus.global_problems)} smuggled transactions",
    ]
    with capsys.disabled():  # the figures belong in the CI log
        print("\n" + "\n".join(lines))
