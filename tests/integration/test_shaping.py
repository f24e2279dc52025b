"""Per-destination shaping: an MX host's provider class limits its messages per second."""

from __future__ import annotations

import uuid

from services.client import EmailClient
from services.common.avro.records import EventType
from tests.integration.harness import RecordingSmtp, TopicCollector, send_message, until_terminal
from tests.stack import SLOW_RATE

N = 10


def test_a_provider_class_rate_spaces_deliveries(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    warm = send_message(client, "warm@shaped.mailstream.test")
    assert until_terminal(events, warm)[-1].type is EventType.DELIVERED
    mids = [
        send_message(client, f"r{i}-{uuid.uuid4().hex[:4]}@shaped.mailstream.test")
        for i in range(N)
    ]
    for mid in mids:
        assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    arrivals = sorted(m.at for m in smtp.messages if any(mid.encode() in m.data for mid in mids))
    assert len(arrivals) == N
    # A burst of one second's worth, then one every 1/SLOW_RATE s; unshaped, the ten arrive
    # within about 0.1 s.
    assert arrivals[-1] - arrivals[0] >= (N - SLOW_RATE) / SLOW_RATE * 0.9
