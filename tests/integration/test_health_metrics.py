"""Every session service is ready and exports its metrics; a delivery shows in them."""

from __future__ import annotations

import re

from services.client import EmailClient
from services.common.avro.records import EventType
from tests.integration.harness import ServiceProcess, TopicCollector, send_message, until_terminal


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        match = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def test_ready_and_counting(
    services: dict[str, ServiceProcess], client: EmailClient, events: TopicCollector
) -> None:
    for module, proc in services.items():
        status, report = proc.readiness()
        assert status == 200 and report["ready"] is True, (module, report)
        assert proc.http_get("/livez")[0] == 200
    sender, publisher = services["services.sender"], services["services.event_publisher"]
    before = _sample(sender.http_get("/metrics")[1].decode(), "mailstream_smtp_outcomes_total",
                     outcome="DELIVERED", priority="TRANSACTIONAL")  # fmt: skip
    mid = send_message(client, "metrics@inbox.mailstream.test")
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    metrics = sender.http_get("/metrics")[1].decode()
    after = _sample(metrics, "mailstream_smtp_outcomes_total", outcome="DELIVERED",
                    priority="TRANSACTIONAL", category="delivered")  # fmt: skip
    assert after >= before + 1
    assert _sample(metrics, "mailstream_accepted_to_delivered_seconds_count",
                   priority="TRANSACTIONAL") >= 1  # fmt: skip
    assert _sample(metrics, "mailstream_consumed_total", lane="sender-transactional") >= 1
    published = publisher.http_get("/metrics")[1].decode()
    assert _sample(published, "mailstream_events_total", type="DELIVERED") >= 1
