"""No key material or credential ever reaches a log line or an event: the DKIM private keys the
sender signs with, and the smarthost password it logs in with, scanned for in every service's
log and every event after the rest of the suite has exercised them."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from services.client import EmailClient, Priority
from services.common.avro.records import EmailEvent, EventType
from tests.integration.harness import (
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    send_message,
    until_terminal,
    wait_until,
)
from tests.stack import RELAY_LOGIN


def _secrets(keys: Path) -> dict[str, str]:
    pem = (keys / "acme-rsa.pem").read_text().splitlines()
    body = [line for line in pem if line and not line.startswith("-----")]
    seed_b64 = (keys / "acme-ed25519.key").read_text().strip()
    found = {f"rsa key line {i}": line for i, line in enumerate(body)}
    found["ed25519 seed (base64)"] = seed_b64
    found["ed25519 seed (hex)"] = base64.b64decode(seed_b64).hex()
    found["relay password"] = RELAY_LOGIN[1]
    return found


def test_no_secret_in_logs_or_events(
    provisioned: Path,
    services: dict[str, ServiceProcess],
    events: TopicCollector,
    client: EmailClient,
    relay: RecordingSmtp,
) -> None:
    # Use both secrets now, so the scan has something to find even when run alone.
    signed = send_message(client, "secrets@inbox.mailstream.test")
    relayed = send_message(
        client,
        "secrets@inbox.mailstream.test",
        tenant_id="routed",
        from_address="news@routed.mailstream.test",
        priority=Priority.BULK,
        headers={"List-Unsubscribe": "<https://routed.mailstream.test/u/2>"},
    )
    for mid in (signed, relayed):
        assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    assert any(relayed.encode() in m.data and m.login for m in relay.messages)
    secrets = _secrets(provisioned / "keys")
    logs = {module: proc.log_text() for module, proc in services.items()}
    leaks = [
        (name, where)
        for where, text in logs.items()
        for name, secret in secrets.items()
        if secret in text
    ]
    everything: list[EmailEvent] = events.items
    assert everything
    text = "\n".join(repr(e) for e in everything)
    leaks += [(name, "email.events") for name, secret in secrets.items() if secret in text]
    assert not leaks


def test_no_kafka_or_cassandra_credential_in_a_service_log(
    env: dict[str, str], provisioned: Path, tmp_path: Path
) -> None:
    """A service given Kafka SASL and Cassandra credentials (the local brokers accept anyone,
    so both are passed on and unused) connects, becomes ready and stops, and its log never
    holds either password."""
    kafka_secret, cassandra_secret = "kafka-sasl-s3cret-9f2", "cassandra-s3cret-71c"
    proc = ServiceProcess(
        module="services.ingest",
        env=env
        | {
            # A prefix of its own: it consumes nothing the session's services should get.
            "MAILSTREAM_KAFKA__TOPIC_PREFIX": f"creds{uuid.uuid4().hex[:6]}.",
            "MAILSTREAM_KAFKA__SASL_MECHANISM": "PLAIN",
            "MAILSTREAM_KAFKA__SASL_USERNAME": "mailstream",
            "MAILSTREAM_KAFKA__SASL_PASSWORD": kafka_secret,
            "MAILSTREAM_CASSANDRA__USERNAME": "mailstream",
            "MAILSTREAM_CASSANDRA__PASSWORD": cassandra_secret,
            "MAILSTREAM_LOG_LEVEL": "debug",
        },
        log_path=tmp_path / "ingest.log",
    )
    proc.start()
    try:
        wait_until("the service to be ready", lambda: proc.readiness()[0] == 200, 90)
    finally:
        code = proc.stop()
    log = proc.log_text()
    assert code == 0, log[-2000:]
    assert "health_listening" in log and "lane_started" in log
    for secret in (kafka_secret, cassandra_secret):
        assert secret not in log
