"""The Go client of examples/go against the real stack: its producer publishes a templated
request (single-object encoded, on its priority's topic, keyed and placed as the Python client
does), mailstream renders and delivers it, and its consumer reads the events to DELIVERED.
Go is required, as in CI: without it these tests fail, they are not skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
import zlib
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from services.common.avro.registry import SchemaRegistry
from services.common.kafka import headers
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from tests.integration.harness import (
    REPO,
    RecordingSmtp,
    TopicCollector,
    mailstream,
    until_terminal,
)

EXAMPLE = REPO / "examples" / "go"
TEMPLATES = """
templates:
  - tenant: acme
    name: go-welcome
    locale: en
    default_locale: en
    required: [name]
    subject: "Welcome, {{ name }}"
    text: "Hello {{ name }}, this came from Go."
"""


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: examples/go needs the Go toolchain", pytrace=False)
    return go


def _run(args: list[str], *, cwd: Path = EXAMPLE, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def binaries() -> Path:
    """examples/go built into its (ignored) bin/; modules come from the default cache."""
    _run([_go(), "build", "-o", "bin/", "./cmd/..."])
    return EXAMPLE / "bin"


@pytest.fixture(scope="module")
def applied(
    env: dict[str, str], provisioned: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("go-templates") / "templates.yaml"
    path.write_text(TEMPLATES)
    mailstream(env, "templates", "apply", "-f", str(path), check=True)


def _kafka_flags(env: dict[str, str]) -> list[str]:
    return [
        "-bootstrap",
        env["MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS"],
        "-topic-prefix",
        env["MAILSTREAM_KAFKA__TOPIC_PREFIX"],
        "-schemas",
        str(REPO / "schemas"),
    ]


def _received(smtp: RecordingSmtp, address: str) -> EmailMessage:
    raw = next(m.data for m in smtp.messages if address in m.rcpt_tos)
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_go_producer_and_consumer_follow_a_templated_request_to_delivered(
    env: dict[str, str],
    applied: None,
    binaries: Path,
    topics: Topics,
    events: TopicCollector,
    smtp: RecordingSmtp,
) -> None:
    mid = f"go-{uuid.uuid4().hex[:10]}"
    to = f"{mid}@inbox.mailstream.test"
    produced = _run(
        [
            str(binaries / "produce"),
            *_kafka_flags(env),
            "-priority",
            "critical",
            "-message-id",
            mid,
            "-tenant",
            "acme",
            "-from",
            "hello@acme.mailstream.test",
            "-to",
            to,
            "-template",
            "go-welcome",
            "-data",
            json.dumps({"name": "Gophér"}),
        ],
        timeout=150,
    )
    published: dict[str, Any] = json.loads(produced)
    schema = SchemaRegistry(schemas_dir=REPO / "schemas").current("mailstream.v1.EmailRequested")
    assert published["fingerprint"] == schema.fingerprint.hex()
    assert published["topic"] == topics.requested(Priority.CRITICAL)
    # Where librdkafka's default partitioner, and so the Python client, puts the same key.
    partitions = int(env["MAILSTREAM_KAFKA__PARTITIONS"])
    assert published["partition"] == zlib.crc32(mid.encode()) % partitions

    consumed = subprocess.run(
        [
            str(binaries / "consume"),
            *_kafka_flags(env),
            "-tenant",
            "acme",
            "-message-id",
            mid,
            "-timeout",
            "90s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert consumed.returncode == 0, f"consume exited {consumed.returncode}:\n{consumed.stderr}"
    printed = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [(e["type"], e["recipient"]) for e in printed] == [("ACCEPTED", to), ("DELIVERED", to)]
    assert printed[-1]["smtp"]["code"] == 250
    assert printed[-1]["priority"] == "CRITICAL"
    # The events the Go consumer decoded are the ones mailstream's own reader sees.
    mine = until_terminal(events, mid)
    assert mine[-1].type is EventType.DELIVERED
    assert [e["event_id"] for e in printed] == [e.event_id for e in mine]

    message = _received(smtp, to)
    assert message["Subject"] == "Welcome, Gophér"
    assert message.get_content().strip() == "Hello Gophér, this came from Go."
    assert message["From"] == "hello@acme.mailstream.test"


def test_confluent_serializer_framing_lands_in_the_requests_dlq(
    env: dict[str, str], client: EmailClient, dlq: TopicCollector, services: object
) -> None:
    """What examples/go/README.md warns of: magic 0 and a 4-byte schema id before the Avro
    body (Confluent's serializer) is not single-object encoding, so ingest dead-letters it."""
    mid = f"go-cf-{uuid.uuid4().hex[:10]}"
    body = client.encode(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="cf@inbox.mailstream.test",
            message_id=mid,
            subject="x",
            text_body="x",
        )
    )[10:]
    framed = b"\x00" + (1).to_bytes(4, "big") + body
    client.publish_raw(framed, key=mid, priority=Priority.TRANSACTIONAL)
    client.flush()

    def mine(items: list[Inbound]) -> list[Inbound]:
        return [d for d in items if d.key == mid.encode()]

    letter = mine(dlq.wait_for("the framed request in the DLQ", lambda xs: bool(mine(xs))))[0]
    assert letter.value == framed
    found = dict(letter.headers)
    assert found[headers.ERROR_CLASS] == b"UndecodableRecord"
    assert b"C3 01" in found[headers.ERROR_MESSAGE]


def test_go_example_is_gofmt_and_vet_clean_and_its_unit_tests_pass() -> None:
    go = _go()
    gofmt = Path(_run([go, "env", "GOROOT"]).strip()) / "bin" / "gofmt"
    unformatted = _run([str(gofmt), "-l", "."])
    assert unformatted == "", f"not gofmt-formatted:\n{unformatted}"
    _run([go, "vet", "./..."])
    _run([go, "test", "./..."])
