"""Cassandra bytes on disk per million messages, per table that grows with traffic.

N one-recipient messages on the common path (claimed, delivered at the first attempt, an
ACCEPTED and a DELIVERED event) are written with the services' own stores (IdempotencyStore,
DeliveryLedger, Timeline), as the services write them (the ACCEPTED rows of the timeline;
DELIVERED is the ledger's row alone since 2026-12-04), into a keyspace of their own; the
tables are flushed and compacted with nodetool (each to what compaction converges to), and
"Space used (live)" (the SSTables on disk: data, index, bloom filter, compression metadata)
is scaled to a million. One replica: multiply by the replication factor. system.paxos (the
state of each claim's LWT, kept for the table's gc_grace_seconds) is measured as its growth,
so other writers of the node blur it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import time
import uuid
from typing import Any

from bench.common import REPO, STATE, emit, quiet_logs
from services.common.avro.records import EmailEvent, EventType, SmtpReply
from services.common.cassandra.migrations import migrate
from services.common.cassandra.retention import RetentionSettings
from services.common.cassandra.session import AsyncSession, connect
from services.common.config import CommonSettings
from services.common.deliveries import Delivery, DeliveryLedger
from services.common.priority import Priority
from services.common.timeline import Timeline
from services.ingest.idempotency import IdempotencyStore

JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
TABLES = ("messages", "deliveries", "message_timeline", "message_tenants", "recipient_timeline")
IN_FLIGHT = 64


def nodetool(*args: str) -> str:
    """nodetool from the local Cassandra's own jars, over JMX on 127.0.0.1."""
    options = REPO / "deploy" / "local" / "cassandra" / "jvm17.options"
    jvm = [line for line in options.read_text().splitlines() if line.startswith("--add-")]
    port = os.environ.get("MAILSTREAM_LOCAL_CASSANDRA_JMX_PORT", "17199")
    command = [JAVA, *jvm, "-cp", f"{STATE}/lib/cassandra/*", "org.apache.cassandra.tools.NodeTool"]
    done = subprocess.run(
        [*command, "-h", "127.0.0.1", "-p", port, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout


def live_bytes(keyspace: str, tables: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out = nodetool("tablestats", *(f"{keyspace}.{t}" for t in tables))
    found: dict[str, dict[str, float]] = {}
    for block in re.split(r"\n\s*Table: ", out)[1:]:
        name = block.split("\n", 1)[0].strip()
        used = re.search(r"Space used \(live\): (\d+)", block)
        ratio = re.search(r"SSTable Compression Ratio: ([\d.]+)", block)
        found[name] = {
            "bytes": float(used.group(1)) if used else float("nan"),
            "compression_ratio": float(ratio.group(1)) if ratio else float("nan"),
        }
    return found


def _events(tenant: str, message_id: str, recipient: str, at_ms: int) -> list[EmailEvent]:
    common: dict[str, Any] = {
        "message_id": message_id,
        "tenant_id": tenant,
        "priority": Priority.TRANSACTIONAL,
        "recipient": recipient,
    }
    smtp = SmtpReply(
        code=250,
        text=f"2.0.0 Ok: queued as {uuid.uuid4().hex[:12].upper()}",
        enhanced_code="2.0.0",
        mx_host="mx1.inbox.example.com",
        tls_version="TLSv1.3",
    )
    return [
        EmailEvent(
            event_id=str(uuid.uuid4()),
            type=EventType.ACCEPTED,
            occurred_at=at_ms,
            attempt=0,
            **common,
        ),
        EmailEvent(
            event_id=str(uuid.uuid4()),
            type=EventType.DELIVERED,
            occurred_at=at_ms + 800,
            attempt=1,
            smtp=smtp,
            **common,
        ),
    ]


async def write(session: AsyncSession, messages: int) -> float:
    claims = IdempotencyStore(session=session)
    ledger = DeliveryLedger(session=session)
    timeline = Timeline(session=session)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        tenant = f"tenant{i % 20:02d}"
        message_id = str(uuid.uuid4())
        recipient = f"customer.{i:07d}@inbox{i % 50}.example.com"
        at_ms = int(time.time() * 1000)
        async with gate:
            await claims.claim(
                tenant_id=tenant,
                message_id=message_id,
                claimed_by=f"email.requested.transactional:{i % 12}:{1_000_000 + i}",
                priority=Priority.TRANSACTIONAL.value,
                recipients=[recipient],
                accepted_at=at_ms,
            )
            events = _events(tenant, message_id, recipient, at_ms)
            await timeline.record(events[0])
            reply = events[1].smtp
            assert reply is not None
            await ledger.record(
                tenant_id=tenant,
                message_id=message_id,
                recipient=recipient,
                delivery=Delivery(
                    at_ms=at_ms + 800,
                    attempt=1,
                    mx_host=reply.mx_host or "",
                    code=reply.code,
                    reply=f"250 {reply.text}",
                    tls_version=reply.tls_version,
                ),
            )

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(messages)))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--short", action="store_true", help="20,000 messages")
    args = parser.parse_args()
    messages = 20_000 if args.short else args.messages
    quiet_logs()
    keyspace = f"bench_storage_{uuid.uuid4().hex[:8]}"
    # Schema changes (and the nodetool runs) wait on a machine that others share.
    settings = CommonSettings().cassandra.model_copy(
        update={"keyspace": keyspace, "request_timeout_s": 120.0}
    )
    retention = RetentionSettings()
    cluster, raw = connect(settings)
    try:
        migrate(raw, settings, retention=retention)
        raw.set_keyspace(keyspace)
        nodetool("flush", "system", "paxos")
        paxos_before = live_bytes("system", ("paxos",))["paxos"]["bytes"]
        seconds = asyncio.run(write(AsyncSession(session=raw), messages))
        nodetool("flush", keyspace)
        nodetool("flush", "system", "paxos")
        for table in TABLES:
            nodetool("compact", keyspace, table)
        sizes = live_bytes(keyspace, TABLES)
        paxos_after = live_bytes("system", ("paxos",))["paxos"]["bytes"]
    finally:
        raw.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
    scale = 1_000_000 / messages
    per_million = {t: round(sizes[t]["bytes"] * scale / 1e6, 1) for t in TABLES}
    paxos = round((paxos_after - paxos_before) * scale / 1e6, 1)
    emit(
        "storage",
        {
            "messages": messages,
            "recipients_per_message": 1,
            "events_per_message": 2,
            # ACCEPTED has timeline rows; DELIVERED's record is the ledger row (since 2026-12-04).
            "timeline_events_per_message": 1,
            "write_seconds": round(seconds, 1),
            "retention": retention.model_dump(),
            "bytes_on_disk": {t: sizes[t]["bytes"] for t in TABLES},
            "compression_ratio": {t: sizes[t]["compression_ratio"] for t in TABLES},
            "mb_per_million_messages": per_million,
            "mb_per_million_total": round(sum(per_million.values()), 1),
            "system_paxos_growth_mb_per_million": paxos,
            "note": "one replica, after flush and a major compaction of each table",
        },
        short=args.short,
    )


if __name__ == "__main__":
    main()
