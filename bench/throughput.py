"""Throughput: N templated 4 KB requests pre-published across the priority topics, drained by
the four services (RSA-2048 DKIM, MX through dnsmasq, Postfix's smtp-sink as the MX); then
the same N messages through a real Postfix relaying to the same sink, fed by smtp-source.

    python -m bench.throughput [--messages 50000] [--short]

Prints JSON (and keeps it with a PNG under bench/results/): end-to-end messages/s, per-hop
latency percentiles from Kafka timestamps, CPU seconds and peak RSS per process, and the
ratio mailstream / Postfix.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from typing import Any

from bench.common import ProcessUsage, emit, percentiles, quiet_logs, stack_pids
from bench.peers import DNS_TTL_S, PostfixRelay, SmtpSink
from bench.pipeline import Pipeline
from services.common.avro.records import EventType
from services.common.priority import Priority

SHORT = 3000
PRIORITIES = (Priority.TRANSACTIONAL, Priority.BULK, Priority.CRITICAL)


def run_mailstream(
    messages: int,
    sink_port: int,
    body_bytes: int,
    settings: dict[str, str] | None = None,
    dns_ttl_s: int = DNS_TTL_S,
) -> dict[str, Any]:
    pipeline = Pipeline(
        smtp_port=sink_port, body_bytes=body_bytes, dns_ttl_s=dns_ttl_s, **(settings or {})
    )
    pipeline.provision()
    tag = f"tp{uuid.uuid4().hex[:6]}"
    published_at: dict[str, int] = {}
    with pipeline.client() as client:
        for i in range(messages):
            request = pipeline.request(i, tag)
            published_at[request.message_id] = request.requested_at
            pipeline.publish(client, PRIORITIES[i % 3], request)
        client.flush()
    pipeline.collect()
    usage = ProcessUsage(pids={})
    try:
        began = time.monotonic()
        pipeline.start()
        pipeline.wait_consuming()
        usage = ProcessUsage(pids=pipeline.pids() | stack_pids())
        usage.start()
        events = pipeline.collectors["events"]
        deadline = time.monotonic() + max(600, messages / 5)
        delivered: dict[str, tuple[int, int]] = {}
        other: dict[str, str] = {}  # any other terminal outcome: a failure of the run
        seen = 0
        while len(delivered) + len(other) < messages and time.monotonic() < deadline:
            items = events.items
            for event, ts in items[seen:]:
                if event.type is EventType.DELIVERED:
                    delivered[event.message_id] = (event.occurred_at, ts)
                elif event.type.terminal:
                    other[event.message_id] = f"{event.type.value} {event.reason}"
            seen = len(items)
            time.sleep(0.5)
        wall = time.monotonic() - began
        processes = usage.stop()
    finally:
        pipeline.stop()
    if len(delivered) < messages:
        raise RuntimeError(
            f"only {len(delivered)} of {messages} delivered in {wall:.0f}s; "
            f"other outcomes: {dict(list(other.items())[:10])}"
        )
    accepted = {
        e.message_id: e.occurred_at
        for e, _ in pipeline.collectors["events"].items
        if e.type is EventType.ACCEPTED
    }
    route = {h.message_id: h.timestamp_ms for h in pipeline.collectors["route"].items}
    deliver = {h.message_id: h.timestamp_ms for h in pipeline.collectors["deliver"].items}
    first = min(accepted.values())
    last = max(at for at, _ in delivered.values())
    hops: dict[str, list[float]] = {
        "ingest (request -> route record)": [],
        "router (route -> deliver record)": [],
        "sender (deliver record -> DELIVERED)": [],
        "publish (DELIVERED -> on email.events)": [],
    }
    for mid, (at, event_ts) in delivered.items():
        if mid in route and mid in deliver:
            hops["ingest (request -> route record)"].append((route[mid] - published_at[mid]) / 1e3)
            hops["router (route -> deliver record)"].append((deliver[mid] - route[mid]) / 1e3)
            hops["sender (deliver record -> DELIVERED)"].append((at - deliver[mid]) / 1e3)
            hops["publish (DELIVERED -> on email.events)"].append((event_ts - at) / 1e3)
    return {
        "messages": messages,
        "delivered": len(delivered),
        "messages_per_s": round(messages / ((last - first) / 1000), 1),
        "drain_s": round((last - first) / 1000, 1),
        "wall_s_from_service_start": round(wall, 1),
        "hop_latency_s": {name: percentiles(v) for name, v in hops.items()},
        "processes": processes,
    }


def run_postfix(messages: int, sink_port: int, body_bytes: int) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with PostfixRelay(sink_port=sink_port) as postfix:
        began = time.monotonic()
        source = postfix.send(messages=messages, size=body_bytes)
        deadline = time.monotonic() + max(600, messages / 20)
        while postfix.sent() < messages and time.monotonic() < deadline:
            time.sleep(0.1)
        took = time.monotonic() - began
        source.wait(60)
        sent = postfix.sent()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if sent < messages:
        raise RuntimeError(f"postfix relayed only {sent} of {messages} in {took:.0f}s")
    return {
        "messages": messages,
        "messages_per_s": round(messages / took, 1),
        "drain_s": round(took, 1),
        "cpu_s_postfix_and_smtp_source": round(
            (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2
        ),
        "note": "smtp-source (20 sessions, connections reused) -> Postfix -> smtp-sink; "
        "Postfix signs no DKIM and renders no template",
    }


def plot(result: dict[str, Any], stem: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right, cpu) = plt.subplots(1, 3, figsize=(17, 4.5))
    names, rates = ["mailstream"], [result["mailstream"]["messages_per_s"]]
    if "postfix" in result:
        names.append("Postfix")
        rates.append(result["postfix"]["messages_per_s"])
    left.bar(names, rates, color=["#3b7dd8", "#999999"][: len(names)])
    left.axhline(1000, color="red", linestyle="--", label="goal 1,000/s")
    left.set_ylabel("messages/s")
    left.set_title(f"{result['mailstream']['messages']} messages, 4 KB")
    left.legend()
    hops = result["mailstream"]["hop_latency_s"]
    labels = [h.split(" (")[0] for h in hops]
    for offset, point in enumerate(("p50", "p95", "p99")):
        right.bar(
            [i + offset * 0.27 for i in range(len(hops))],
            [hops[h][point] for h in hops],
            width=0.27,
            label=point,
        )
    right.set_xticks([i + 0.27 for i in range(len(hops))], labels, rotation=15)
    right.set_ylabel("seconds (backlog wait included)")
    right.set_title("per-hop latency from Kafka timestamps")
    right.legend()
    per = {k: v for k, v in result["mailstream"]["cpu_ms_per_message"].items() if k != "all"}
    cpu.bar(list(per), list(per.values()), color="#3b7dd8")
    cpu.set_xticks(range(len(per)), list(per), rotation=15)
    cpu.set_ylabel("CPU ms per delivered message")
    total = result["mailstream"]["cpu_ms_per_message"]["all"]
    cpu.set_title(f"CPU per message: {total} ms in all (goal 3 ms)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)


# Issue 13's goals for this benchmark (the critical-latency, idle and DKIM goals are the
# other benchmarks').
GOALS = {
    "messages_per_s": 1000,
    "ratio_to_postfix": 1.0,
    "cpu_ms_per_message_all_processes": 3.0,
    "peak_rss_mb_per_service": 150,
}


def cpu_per_message(processes: dict[str, Any], delivered: int) -> dict[str, float]:
    """CPU milliseconds per delivered message, per process and for all of them together."""
    delivered = max(delivered, 1)
    per = {name: round(p["cpu_s"] * 1000 / delivered, 2) for name, p in processes.items()}
    per["all"] = round(sum(p["cpu_s"] for p in processes.values()) * 1000 / delivered, 2)
    return per


# What --set may change in the services' environment: their settings, and the allocator and
# interpreter knobs a memory lever is tried with (MALLOC_ARENA_MAX, PYTHONMALLOC, ...).
SETTABLE = ("MAILSTREAM_", "MALLOC_", "PYTHON")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--short", action="store_true", help=f"{SHORT} messages")
    parser.add_argument("--body-bytes", type=int, default=4096)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting to try (repeatable); the run is kept as throughput-variant",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip Postfix (kept as throughput-variant)"
    )
    parser.add_argument(
        "--dns-ttl", type=int, default=DNS_TTL_S, metavar="S",
        help=f"TTL of the zone's records (default {DNS_TTL_S}; another is a variant)",
    )  # fmt: skip
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    if bad := [k for k in settings if not k.startswith(SETTABLE)]:
        parser.error(f"--set takes {'/'.join(p + '*' for p in SETTABLE)} only: {bad}")
    quiet_logs()
    messages = SHORT if args.short else args.messages
    with SmtpSink() as sink:
        ours = run_mailstream(messages, sink.port, args.body_bytes, settings, args.dns_ttl)
        theirs = None if args.no_reference else run_postfix(messages, sink.port, args.body_bytes)
    result: dict[str, Any] = {"mailstream": ours, "settings": settings, "dns_ttl_s": args.dns_ttl}
    if theirs is not None:
        result["postfix"] = theirs
        result["ratio_mailstream_to_postfix"] = round(
            ours["messages_per_s"] / theirs["messages_per_s"], 3
        )
    ours["cpu_ms_per_message"] = cpu_per_message(ours["processes"], ours["delivered"])
    result["goals"] = GOALS
    variant = bool(settings) or args.no_reference or args.dns_ttl != DNS_TTL_S
    stem = emit("throughput-variant" if variant else "throughput", result, short=args.short)
    plot(result, stem)


if __name__ == "__main__":
    main()
