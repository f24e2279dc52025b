"""Priority isolation: a bulk backlog draining while critical requests arrive at a steady
rate; critical request -> 250 at the MX latency, for mailstream and, beside it, for the same
mix through Postfix (one FIFO queue), both to the same recording MX.

    python -m bench.priority [--bulk 100000] [--rate 2] [--seconds 120] [--short]
"""

from __future__ import annotations

import argparse
import smtplib
import time
import uuid
from email.message import EmailMessage
from typing import Any

from bench.arrivals import ArrivalsMx
from bench.common import emit, percentiles, quiet_logs, wait_until
from bench.peers import PostfixRelay
from bench.pipeline import Pipeline
from services.common.priority import Priority

GOAL_P99_S = 0.3
SHORT = {"bulk": 5000, "seconds": 20.0}


def probe_mailstream(args: argparse.Namespace, mx: ArrivalsMx) -> dict[str, Any]:
    pipeline = Pipeline(smtp_port=mx.port)
    pipeline.provision()
    tag = f"prio{uuid.uuid4().hex[:6]}"
    probes: dict[str, str] = {}  # message_id -> order
    with pipeline.client() as client:
        for i in range(args.bulk):
            pipeline.publish(client, Priority.BULK, pipeline.request(i, tag))
        client.flush()
        pipeline.collect(("route", "deliver"))  # keys and timestamps: cheap beside the load
        pipeline.start()
        try:
            pipeline.wait_consuming()
            sent: dict[str, float] = {}
            bulk_at_start = mx.others
            for n in range(int(args.seconds * args.rate)):
                order = f"probe-{tag}-{n}"
                request = pipeline.request(1_000_000 + n, tag, order=order)
                probes[request.message_id] = order
                sent[order] = time.time()
                client.send(request, priority=Priority.CRITICAL, wait=False)
                client.flush(5)
                time.sleep(max(0.0, sent[order] + 1 / args.rate - time.time()))
            wait_until("the critical probes", lambda: set(sent) <= set(mx.arrived()), 120, 0.05)
            bulk_drained = mx.others - bulk_at_start
        finally:
            pipeline.stop()
    arrived = mx.arrived()
    return {
        "bulk_backlog": args.bulk,
        "critical_sent": len(sent),
        "bulk_delivered_meanwhile": bulk_drained,
        "critical_request_to_mx_s": percentiles([arrived[o] - t for o, t in sent.items()]),
        "critical_hop_latency_s": critical_hops(pipeline, probes, sent, arrived),
    }


def critical_hops(
    pipeline: Pipeline, probes: dict[str, str], sent: dict[str, float], arrived: dict[str, float]
) -> dict[str, Any]:
    """Where a critical probe's time goes, from the Kafka timestamps of its route and deliver
    records (written by ingest and the router) and its arrival at the MX."""
    route = {h.message_id: h.timestamp_ms / 1e3 for h in pipeline.collectors["route"].items}
    deliver = {h.message_id: h.timestamp_ms / 1e3 for h in pipeline.collectors["deliver"].items}
    hops: dict[str, list[float]] = {
        "ingest (request -> route record)": [],
        "router (route -> deliver record)": [],
        "sender (deliver record -> 250 at the MX)": [],
    }
    for mid, order in probes.items():
        if mid in route and mid in deliver and order in arrived:
            hops["ingest (request -> route record)"].append(route[mid] - sent[order])
            hops["router (route -> deliver record)"].append(deliver[mid] - route[mid])
            hops["sender (deliver record -> 250 at the MX)"].append(arrived[order] - deliver[mid])
    return {name: percentiles(v) for name, v in hops.items()}


def probe_postfix(args: argparse.Namespace, mx: ArrivalsMx) -> dict[str, Any]:
    tag = f"pfx{uuid.uuid4().hex[:6]}"
    with PostfixRelay(sink_port=mx.port, hold=True) as postfix:
        # The backlog queued first, as mailstream's is pre-published, then released.
        source = postfix.send(messages=args.bulk, size=4096)
        source.wait(max(600, args.bulk / 50))
        wait_until("the backlog queued", lambda: postfix.queued() >= args.bulk, 300, 0.5)
        before = mx.others
        postfix.release()
        sent: dict[str, float] = {}
        with smtplib.SMTP("127.0.0.1", postfix.port) as smtp:
            for n in range(int(args.seconds * args.rate)):
                order = f"probe-{tag}-{n}"
                message = EmailMessage()
                message["From"] = "news@bench.mailstream.test"
                message["To"] = f"critical{n}@inbox.mailstream.test"
                message["Subject"] = f"Order {order} shipped"
                message.set_content("x" * 4000)
                sent[order] = time.time()
                smtp.send_message(message)
                time.sleep(max(0.0, sent[order] + 1 / args.rate - time.time()))
        wait_until("the critical probes", lambda: set(sent) <= set(mx.arrived()), 600, 0.05)
        drained = mx.others - before
    arrived = mx.arrived()
    return {
        "bulk_backlog": args.bulk,
        "critical_sent": len(sent),
        "bulk_delivered_by_the_last_probe": drained,
        "critical_request_to_mx_s": percentiles([arrived[o] - t for o, t in sent.items()]),
        "note": "smtp-source queues the backlog while delivery is held (defer_transports), "
        "delivery is released, then probes are submitted to the same smtpd",
    }


def plot(result: dict[str, Any], stem: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    points = ("p50", "p95", "p99")
    for offset, name in enumerate(("mailstream", "postfix")):
        values = [result[name]["critical_request_to_mx_s"][p] for p in points]
        ax.bar([i + offset * 0.4 for i in range(3)], values, width=0.4, label=name)
    ax.axhline(GOAL_P99_S, color="red", linestyle="--", label=f"p99 goal {GOAL_P99_S} s")
    ax.set_xticks([i + 0.2 for i in range(3)], points)
    ax.set_yscale("log")
    ax.set_ylabel("critical request -> 250 at the MX, seconds")
    ax.set_title(f"critical mail while {result['mailstream']['bulk_backlog']} bulk drain")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2.0, help="critical requests per second")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--short", action="store_true", help="5,000 bulk, 20 s of probes")
    args = parser.parse_args()
    quiet_logs()
    if args.short:
        args.bulk, args.seconds = SHORT["bulk"], SHORT["seconds"]
    with ArrivalsMx() as mx:
        ours = probe_mailstream(args, mx)
    with ArrivalsMx() as mx:
        theirs = probe_postfix(args, mx)
    mine, ref = ours["critical_request_to_mx_s"], theirs["critical_request_to_mx_s"]
    result = {
        "mailstream": ours,
        "postfix": theirs,
        # Issue 13: p99 at most 0.3 s, and below Postfix at p50, p95 and p99.
        "goal": {"critical_p99_s": GOAL_P99_S, "below_postfix_at": ["p50", "p95", "p99"]},
        "goal_met": mine["p99"] <= GOAL_P99_S
        and all(mine[p] < ref[p] for p in ("p50", "p95", "p99")),
    }
    stem = emit("priority", result, short=args.short)
    plot(result, stem)


if __name__ == "__main__":
    main()
