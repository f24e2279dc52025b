"""A crashed service's evidence from its JSON log: the exception of the lane that failed, in
one line (shared by the security corpus and the fuzz test)."""

from __future__ import annotations

import json
import re

from tests.integration.harness import ServiceProcess


def _one_line(trace: str) -> str:
    """An exception's type and message, and the innermost frame of the services' own code."""
    frames = re.findall(r'File "[^"]*/(services/[^"]+)", line (\d+), in (\w+)', trace)
    last = trace.strip().splitlines()[-1] if trace.strip() else "?"
    where = f" at {frames[-1][0]}:{frames[-1][1]} ({frames[-1][2]})" if frames else ""
    return f"{last[:300]}{where}"


def crash_evidence(proc: ServiceProcess) -> str:
    """The failing lane's exception, in one line: its type, message and innermost own frame."""
    for line in proc.log_text().splitlines():
        if '"lane_failed"' not in line and '"service_crashed"' not in line:
            continue
        try:
            trace = str(json.loads(line).get("exception", ""))
        except ValueError:
            continue
        return f"{proc.module} crashed: {_one_line(trace)}"
    return f"{proc.module} exited: {proc.log_text()[-300:]}"


def _entries(proc: ServiceProcess, needle: str) -> list[dict[str, object]]:
    """The service's JSON log entries whose raw line holds `needle` (a cheap filter before the
    parse); lines that are not JSON are left out."""
    found = []
    for line in proc.log_text().splitlines():
        if needle not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def logged(proc: ServiceProcess, event: str) -> list[dict[str, object]]:
    """The service's JSON log lines of one event name, each with its exception (if any)
    shortened to one line under `exception_line`."""
    found = []
    for entry in _entries(proc, f'"{event}"'):
        if entry.get("event") != event:
            continue
        if entry.get("exception"):
            entry["exception_line"] = _one_line(str(entry["exception"]))
        found.append(entry)
    return found


def trail(procs: list[ServiceProcess], message_id: str, limit: int = 40) -> list[str]:
    """What each service logged about one message, one short line per entry in log order per
    service: where a request that never ended was last seen (paced, delayed, deferred...)."""
    lines = []
    for proc in procs:
        for entry in _entries(proc, message_id):
            if entry.get("message_id") != message_id:
                continue
            keep = {
                k: v
                for k, v in entry.items()
                if k not in ("message_id", "tenant_id", "logger", "level") and v is not None
            }
            lines.append(f"{proc.module}: {json.dumps(keep, default=str)[:300]}")
    return lines[:limit]
