"""What every benchmark shares: the machine description, percentiles, per-process CPU and
peak memory from /proc, and writing results as JSON (stdout and bench/results/) with a PNG."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
STATE = Path(os.environ.get("MAILSTREAM_STATE_DIR", REPO / ".state"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def quiet_logs() -> None:
    """Only warnings from the collectors this process runs, and on stderr: stdout is JSON."""
    from services.common.logging import configure_logging

    configure_logging(level="warning", fmt="console")


def machine() -> dict[str, Any]:
    """Enough to tell two runs' machines apart."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "java": java.splitlines()[0] if java else "",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "Kafka, Cassandra, dnsmasq, the SMTP sink, the four services and the load "
        "generator all share these cores",
    }


def percentiles(values: Sequence[float], points: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in points} | {"max": float("nan"), "n": 0}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        out[f"p{p}"] = round(ordered[index], 4)
    out["max"] = round(ordered[-1], 4)
    out["n"] = len(ordered)
    return out


@dataclass
class ProcessUsage:
    """CPU seconds and peak RSS of named processes, measured between start() and stop()."""

    pids: dict[str, int]
    _cpu_at_start: dict[str, float] = field(default_factory=dict)
    result: dict[str, dict[str, float]] = field(default_factory=dict)

    @staticmethod
    def _cpu_s(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    @staticmethod
    def _peak_rss_mb(pid: int) -> float:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    def start(self) -> None:
        self._cpu_at_start = {name: self._cpu_s(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, dict[str, float]]:
        for name, pid in self.pids.items():
            try:
                cpu = self._cpu_s(pid) - self._cpu_at_start.get(name, 0.0)
                self.result[name] = {"cpu_s": round(cpu, 2), "peak_rss_mb": self._peak_rss_mb(pid)}
            except FileNotFoundError:
                self.result[name] = {"cpu_s": float("nan"), "peak_rss_mb": float("nan")}
        return self.result


def stack_pids() -> dict[str, int]:
    """Kafka's and Cassandra's pids, from the local stack's pidfiles."""
    found = {}
    for name in ("kafka", "cassandra"):
        pidfile = STATE / "run" / f"{name}.pid"
        if pidfile.exists():
            found[name] = int(pidfile.read_text().strip())
    return found


def emit(name: str, result: dict[str, Any], *, short: bool) -> Path:
    """Prints the JSON and keeps it as bench/results/<name>[-short].json; returns the stem."""
    result = {"benchmark": name, "short": short, "machine": machine(), **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{name}{'-short' if short else ''}"
    text = json.dumps(result, indent=2, sort_keys=False, default=str)
    stem.with_suffix(".json").write_text(text + "\n")
    print(text)
    return stem


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
