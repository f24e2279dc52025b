"""No key material or credential ever reaches a log line or an event: the DKIM private keys the
sender signs with, and the smarthost password it logs in with, scanned for in every service's
log and every event after the rest of the suite has exercised them."""

from __future__ import annotations

import base64
from pathlib import Path

from services.client import EmailClient, Priority
from services.common.avro.records import EmailEvent, EventType
from tests.integration.harness import (
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    send_message,
    until_terminal,
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
