"""Idle latency: one critical request at a time through the idle pipeline; from the moment
the client publishes it to the moment the MX has the message (250 to end of data), and to
its DELIVERED event on email.events.

    python -m bench.idle [--requests 200] [--short] [--dns-ttl 300]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from bench.arrivals import ArrivalsMx
from bench.common import ProcessUsage, emit, percentiles, quiet_logs, stack_pids, wait_until
from bench.peers import DNS_TTL_S
from bench.pipeline import Pipeline
from bench.priority import critical_hops
from services.common.avro.records import EventType
from services.common.priority import Priority

SHORT = 50


GOAL_P50_S, GOAL_P99_S = 0.015, 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--short", action="store_true", help=f"{SHORT} requests")
    parser.add_argument(
        "--dns-ttl", type=int, default=DNS_TTL_S, metavar="S",
        help=f"TTL of the zone's records (default {DNS_TTL_S}; another is kept as idle-variant)",
    )  # fmt: skip
    args = parser.parse_args()
    quiet_logs()
    count = SHORT if args.short else args.requests
    tag = f"idle{uuid.uuid4().hex[:6]}"
    with ArrivalsMx() as mx:
        pipeline = Pipeline(smtp_port=mx.port, dns_ttl_s=args.dns_ttl)
        pipeline.provision()
        pipeline.collect()
        pipeline.start()
        try:
            pipeline.wait_consuming()
            usage = ProcessUsage(pids=pipeline.pids() | stack_pids())
            usage.start()
            to_mx: list[float] = []
            to_event: list[float] = []
            probes: dict[str, str] = {}  # message_id -> order
            sent_at: dict[str, float] = {}  # order -> when the client published it
            with pipeline.client() as client:
                for i in range(-5, count):  # the first five warm the caches and pools
                    order = f"probe-{tag}-{i}"
                    request = pipeline.request(i if i >= 0 else 10_000 + i, tag, order=order)
                    sent = time.time()
                    client.send(request, priority=Priority.CRITICAL)
                    wait_until(order, lambda o=order: o in mx.arrived(), 30, interval=0.002)

                    def delivered(mid: str = request.message_id) -> int | None:
                        for event, ts in pipeline.collectors["events"].items[::-1]:
                            if event.message_id == mid and event.type is EventType.DELIVERED:
                                return ts
                        return None

                    wait_until("its DELIVERED event", lambda: delivered() is not None, 30, 0.002)
                    if i >= 0:
                        probes[request.message_id], sent_at[order] = order, sent
                        to_mx.append(mx.arrived()[order] - sent)
                        to_event.append((delivered() or 0) / 1000 - sent)
                    time.sleep(0.05)
            processes = usage.stop()
            hops = critical_hops(pipeline, probes, sent_at, mx.arrived())
        finally:
            pipeline.stop()
    result: dict[str, Any] = {
        "requests": count,
        "dns_ttl_s": args.dns_ttl,
        "request_to_mx_s": percentiles(to_mx),
        "request_to_delivered_event_s": percentiles(to_event),
        "hop_latency_s": hops,
        "processes": processes,
        # Issue 13: request -> MX at p50 15 ms, p99 50 ms.
        "goals": {"p50_s": GOAL_P50_S, "p99_s": GOAL_P99_S},
        "goals_met": {
            "p50": percentiles(to_mx)["p50"] <= GOAL_P50_S,
            "p99": percentiles(to_mx)["p99"] <= GOAL_P99_S,
        },
    }
    stem = emit("idle" if args.dns_ttl == DNS_TTL_S else "idle-variant", result, short=args.short)
    plot(to_mx, to_event, stem)


def plot(to_mx: list[float], to_event: list[float], stem: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for values, label in ((to_mx, "request -> 250 at the MX"), (to_event, "-> DELIVERED event")):
        ordered = sorted(v * 1000 for v in values)
        ax.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=label)
    ax.axvline(GOAL_P50_S * 1000, color="red", linestyle="--", label="p50 goal")
    ax.axvline(GOAL_P99_S * 1000, color="red", linestyle=":", label="p99 goal")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("fraction of requests")
    ax.set_title("idle pipeline, one critical request at a time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
