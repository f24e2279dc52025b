"""Only services/common/kafka/runner.py may poll a Kafka consumer (STYLE.md, habit 3)."""

import re
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
RUNNER = SERVICES / "common" / "kafka" / "runner.py"


def test_consumer_consume_and_poll_appear_only_in_the_runner() -> None:
    offenders = []
    for path in SERVICES.rglob("*.py"):
        text = path.read_text()
        uses_consumer = re.search(r"\bConsumer\s*\(", text) or re.search(r"\.consume\s*\(", text)
        if uses_consumer and path != RUNNER:
            offenders.append(str(path.relative_to(SERVICES)))
    assert offenders == []
    assert ".consume" in RUNNER.read_text()
