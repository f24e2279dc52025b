"""A keyspace not migrated yet: the service waits, readiness names it, and it is logged once
per change of message, not at every retry; Cassandra unreachable is still warned each time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.common import kernel
from services.common.config import CassandraSettings, CommonSettings
from services.common.errors import KeyspaceMissing, TransientError
from services.common.health import Health

MISSING = "keyspace 'absent' does not exist: run 'mailstream db migrate'"


async def test_the_missing_keyspace_is_said_once_and_readiness_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes: list[Exception | None] = [
        KeyspaceMissing(MISSING),
        KeyspaceMissing(MISSING),
        KeyspaceMissing(MISSING),
        TransientError("cannot reach Cassandra at 127.0.0.1:19042: down"),
        KeyspaceMissing(MISSING),
        None,
    ]
    details: list[str] = []
    health = Health(service="test", required=("cassandra",))

    def connect(_settings: CassandraSettings, *, keyspace: str | None = None) -> Any:
        assert keyspace == "absent"
        details.append(health.report()["checks"]["cassandra"]["detail"])
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "cluster", "session"

    async def no_wait(awaitable: Any, _timeout: float) -> None:
        awaitable.close()

    monkeypatch.setattr(kernel, "connect", connect)
    monkeypatch.setattr(kernel.asyncio, "wait_for", no_wait)
    settings = CommonSettings(cassandra=CassandraSettings(keyspace="absent"))
    with capture_logs() as logs:
        connected = await kernel._wait_for_cassandra(settings, health=health, stop=asyncio.Event())
    assert connected == ("cluster", "session")
    down = "cannot reach Cassandra at 127.0.0.1:19042: down"
    assert details == ["not checked yet", MISSING, MISSING, MISSING, down, MISSING]
    warned = [(e["event"], e["error"]) for e in logs if e["log_level"] == "warning"]
    assert warned == [
        ("cassandra_keyspace_missing", MISSING),
        ("cassandra_unavailable", down),
        ("cassandra_keyspace_missing", MISSING),
    ]
    assert health.holds("cassandra")
