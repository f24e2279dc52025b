"""Operator errors end the CLI and the services with one line and exit 2, never a traceback;
a keyspace not migrated yet leaves a service waiting, not ready, saying why."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.harness import REPO, ServiceProcess, base_env, mailstream, wait_until

pytestmark = pytest.mark.integration


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def run_service(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_names_a_malformed_setting() -> None:
    result = mailstream(base_env(MAILSTREAM_KAFKA__MAX_IN_FLIGHT="abc"), "tenants", "list")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("error: MAILSTREAM_KAFKA__MAX_IN_FLIGHT: Input should be a valid")
    assert line.endswith("(got 'abc')")
    tiers = mailstream(base_env(MAILSTREAM_DELAY_TIERS_S="[60, soon]"), "topics", "describe")
    assert tiers.returncode == 2
    assert one_line(tiers.stderr).startswith("error: MAILSTREAM_DELAY_TIERS_S: not valid JSON")


def test_send_names_an_argument_that_is_not_utf8() -> None:
    result = mailstream(
        base_env(),
        "send", "--tenant", "acme", "--from", "hello@acme.mailstream.test",
        "--to", "ok@example.com", "--to", "\udcffx@example.com", "--text", "hi",
    )  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("error: --to: not UTF-8 text, near ")


def test_a_service_names_a_malformed_setting() -> None:
    result = run_service("services.router", base_env(MAILSTREAM_ROUTING__SMARTHOSTS="{bad"))
    assert result.returncode == 2
    record = json.loads(one_line(result.stderr))
    assert record["event"] == "service_misconfigured" and record["service"] == "router"
    assert record["error"].startswith("MAILSTREAM_ROUTING or a MAILSTREAM_ROUTING__* variable:")
    level = run_service("services.ingest", base_env(MAILSTREAM_LOG_LEVEL="loud"))
    assert level.returncode == 2
    assert json.loads(one_line(level.stderr))["error"] == "MAILSTREAM_LOG_LEVEL: no level 'loud'"


def test_a_health_port_in_use_ends_a_service_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_service("services.ingest", base_env(MAILSTREAM_HEALTH__PORT=str(port)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert [e["event"] for e in errors] == ["service_misconfigured"], result.stderr
    assert errors[0]["error"].startswith(
        f"cannot listen on 127.0.0.1:{port} for /livez, /readyz and /metrics: Address already"
    )


def test_cli_on_a_keyspace_not_migrated_says_to_migrate(stack: None) -> None:
    keyspace = f"absent_{uuid.uuid4().hex[:8]}"
    env = base_env(MAILSTREAM_CASSANDRA__KEYSPACE=keyspace)
    for command in (["tenants", "list"], ["suppressions", "list", "--tenant", "acme"]):
        result = mailstream(env, *command)
        assert result.returncode == 2, result
        assert one_line(result.stderr) == (
            f"error: keyspace '{keyspace}' does not exist: run 'mailstream db migrate'"
        )


def test_a_service_waits_for_a_keyspace_not_migrated(stack: None, tmp_path: Path) -> None:
    """Under Kubernetes the migrate job may run after the services start: they stay up, not
    ready, with the keyspace and the command to run named in the reason (not "cannot reach
    Cassandra"), said once in the log rather than at every retry."""
    keyspace = f"absent_{uuid.uuid4().hex[:8]}"
    proc = ServiceProcess(
        module="services.ingest",
        env=base_env(MAILSTREAM_CASSANDRA__KEYSPACE=keyspace),
        log_path=tmp_path / "ingest.log",
    )
    proc.start()
    expected = f"keyspace '{keyspace}' does not exist: run 'mailstream db migrate'"
    try:

        def reported() -> bool:
            assert proc.alive(), proc.log_text()
            status, report = proc.readiness()
            detail = report.get("checks", {}).get("cassandra", {}).get("detail", "")
            return status == 503 and keyspace in detail

        wait_until("readiness to name the missing keyspace", reported, 60)
        assert proc.readiness()[1]["checks"]["cassandra"]["detail"] == expected
        # Not ready for 8 s, past a few retries (1, 2 then 4 s apart): still said once.
        wait_until(
            "a few retries", lambda: proc.readiness()[1]["checks"]["cassandra"]["for_s"] >= 8, 30
        )
        log = proc.log_text()
        assert "Traceback" not in log
        missing = [
            json.loads(line) for line in log.splitlines() if "cassandra_keyspace_missing" in line
        ]
        assert [r["error"] for r in missing] == [expected]
        assert '"cassandra_unavailable"' not in log and "cannot reach Cassandra" not in log
    finally:
        assert proc.stop() == 0, proc.log_text()[-2000:]
