"""Every session service is ready and exports its metrics; a delivery shows in them."""

from __future__ import annotations

import re

from services.client import EmailClient
from services.common.avro.records import EventType
from tests.integration.harness import (
    ServiceProcess,
    TopicCollector,
    send_message,
    until_terminal,
    wait_until,
)


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (other tests of the
    session leave samples of other providers and categories)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_ready_and_counting(
    services: dict[str, ServiceProcess], client: EmailClient, events: TopicCollector
) -> None:
    for module, proc in services.items():
        status, report = proc.readiness()
        assert status == 200 and report["ready"] is True, (module, report)
        assert proc.http_get("/livez")[0] == 200
    sender, publisher = services["services.sender"], services["services.event_publisher"]
    delivered = {"outcome": "DELIVERED", "priority": "TRANSACTIONAL", "category": "delivered"}
    before = _sample(
        sender.http_get("/metrics")[1].decode(), "mailstream_smtp_outcomes_total", **delivered
    )
    mid = send_message(client, "metrics@inbox.mailstream.test")
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    metrics = sender.http_get("/metrics")[1].decode()
    after = _sample(metrics, "mailstream_smtp_outcomes_total", outcome="DELIVERED",
                    priority="TRANSACTIONAL", category="delivered")  # fmt: skip
    assert after >= before + 1
    assert _sample(metrics, "mailstream_accepted_to_delivered_seconds_count",
                   priority="TRANSACTIONAL") >= 1  # fmt: skip
    assert _sample(metrics, "mailstream_consumed_total", lane="sender-transactional") >= 1
    # The sender publishes DELIVERED itself, past the event-publisher (which serves its own).
    assert _sample(metrics, "mailstream_events_total", type="DELIVERED") >= 1
    published = publisher.http_get("/metrics")[1].decode()
    assert _sample(published, "mailstream_ready_check", check="kafka") == 1


def test_pool_lag_and_readiness_gauges(
    services: dict[str, ServiceProcess], client: EmailClient, events: TopicCollector
) -> None:
    """After a delivery the sender shows its pool, its rate waits and its lanes' lag."""
    sender = services["services.sender"]
    mid = send_message(client, "gauges@inbox.mailstream.test")
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    metrics = sender.http_get("/metrics")[1].decode()
    # Any provider label: a pooled connection serves every MX name at its address, and may
    # have been opened for another provider class by an earlier test.
    pooled = _sample(metrics, "mailstream_smtp_connections")
    assert pooled >= 1, [x for x in metrics.splitlines() if "smtp_connections" in x]
    assert _sample(metrics, "mailstream_smtp_rate_wait_seconds_count", provider="other") >= 1
    assert _sample(metrics, "mailstream_ready_check", check="kafka") == 1
    assert _sample(metrics, "mailstream_ready_check", check="cassandra") == 1
    wait_until(
        "a lag sample of the sender's transactional lane",
        lambda: (
            'mailstream_consumer_lag{lane="sender-transactional"'
            in sender.http_get("/metrics")[1].decode()
        ),
        30,
    )
