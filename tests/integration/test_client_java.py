"""The Java client (examples/java) against the real stack: built with Maven, it publishes a
templated request in Avro's single-object encoding and reads the message's events back."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from services.common.avro.records import EmailRequested, TemplateRef
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from tests.integration.harness import REPO, RecordingSmtp, TopicCollector, mailstream

JAVA_DIR = REPO / "examples" / "java"
JAR = JAVA_DIR / "target" / "mailstream-example.jar"
TEMPLATES = """
templates:
  - tenant: acme
    name: java-welcome
    locale: en
    default_locale: en
    required: [name]
    subject: "Welcome from Java, {{ name }}"
    text: "Hello {{ name }}, this came through the Java client."
"""
TO = "java@inbox.mailstream.test"
# A first build downloads the plugins and dependencies into ~/.m2: minutes on a busy machine.
BUILD_TIMEOUT_S = 900

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 300)


@pytest.fixture(scope="module")
def jar() -> Path:
    """Built with `mvn -B -q package` every run: a rerun downloads nothing (~/.m2) and
    regenerates and recompiles nothing that did not change (target/)."""
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"`{tool}` is not on PATH: the Java client needs Maven and a JDK 17 "
                "(apt-get install maven openjdk-17-jdk-headless)",
                pytrace=False,
            )
    build = subprocess.run(
        ["mvn", "-B", "-q", "package"],
        cwd=JAVA_DIR,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if build.returncode != 0:
        pytest.fail(
            f"mvn package failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}", pytrace=False
        )
    return JAR


@pytest.fixture(scope="module")
def applied(
    env: dict[str, str], provisioned: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("java-templates") / "templates.yaml"
    path.write_text(TEMPLATES)
    mailstream(env, "templates", "apply", "-f", str(path), check=True)


@pytest.fixture(scope="module")
def critical_requests(settings: CommonSettings, topics: Topics) -> Iterator[TopicCollector]:
    """The raw records on email.requested.critical, to check what the Java producer wrote."""
    collector = TopicCollector(
        kafka=settings.kafka,
        topics=[topics.requested(Priority.CRITICAL)],
        group_id=f"test-java-requests-{uuid.uuid4().hex[:6]}",
        decode=lambda m: m,
    )
    collector.start()
    yield collector
    collector.stop()


def _java(jar: Path, env: dict[str, str], command: str, *args: str) -> list[str]:
    """Runs one command of the Java client; its stdout lines."""
    kafka = [
        "--bootstrap-servers",
        env["MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS"],
        "--topic-prefix",
        env["MAILSTREAM_KAFKA__TOPIC_PREFIX"],
    ]
    result = subprocess.run(
        ["java", "-jar", str(jar), command, *kafka, *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"java {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-4000:]}"
    )
    return result.stdout.splitlines()


def _received(smtp: RecordingSmtp, subject: str) -> EmailMessage:
    for received in smtp.messages:
        message = message_from_bytes(received.data, policy=default)
        if isinstance(message, EmailMessage) and message["Subject"] == subject:
            return message
    raise AssertionError(f"no message with subject {subject!r} reached the SMTP server")


def test_java_client_sends_templated_request_and_sees_it_delivered(
    jar: Path,
    applied: None,
    services: object,
    critical_requests: TopicCollector,
    serde: RecordSerde,
    settings: CommonSettings,
    env: dict[str, str],
    smtp: RecordingSmtp,
) -> None:
    name = f"Ada-{uuid.uuid4().hex[:8]}"
    sent = _java(
        jar,
        env,
        "send",
        "--tenant", "acme",
        "--from", "hello@acme.mailstream.test",
        "--to", TO,
        "--template", "java-welcome",
        "--data", json.dumps({"name": name}),
        "--priority", "critical",
    )  # fmt: skip
    mid = sent[-1]

    printed = _java(
        jar, env, "await", "--tenant", "acme", "--message-id", mid, "--to", TO, "--timeout-s", "90"
    )
    events = [json.loads(line) for line in printed]
    assert [(e["type"], e["recipient"], e["message_id"]) for e in events] == [
        ("ACCEPTED", TO, mid),
        ("DELIVERED", TO, mid),
    ]
    assert events[-1]["smtp"]["code"] == 250

    message = _received(smtp, f"Welcome from Java, {name}")
    assert message.get_content().strip() == f"Hello {name}, this came through the Java client."
    assert message["To"] == TO

    # What the contract asks of a producer: keyed by message_id, single-object encoded; and
    # the partition librdkafka (the Python client) would give that key.
    records: list[Inbound] = critical_requests.wait_for(
        "the Java client's request", lambda xs: any(r.key == mid.encode() for r in xs)
    )
    record = next(r for r in records if r.key == mid.encode())
    assert record.value[:2] == b"\xc3\x01"
    assert record.partition == zlib.crc32(mid.encode()) % settings.kafka.partitions
    request = serde.decode(EmailRequested, record.value)
    assert request.template == TemplateRef(name="java-welcome")
    assert json.loads(request.template_data_json or "") == {"name": name}
    assert (request.subject, request.text_body, request.html_body) == (None, None, None)
