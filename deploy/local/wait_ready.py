"""Wait until a local-stack component answers a real request, or fail with its log tail."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

POLL_INTERVAL_S = 0.5
LOG_TAIL_LINES = 40


def kafka_ready(host: str, port: int) -> None:
    """A metadata request answered by the broker."""
    from confluent_kafka.admin import AdminClient

    # log_level 0: librdkafka would otherwise print every refused connection.
    client = AdminClient({"bootstrap.servers": f"{host}:{port}", "log_level": 0})
    client.list_topics(timeout=2)


def cassandra_ready(host: str, port: int) -> None:
    """A CQL query answered by the node."""
    from cassandra.cluster import Cluster

    cluster = Cluster(
        contact_points=[host], port=port, connect_timeout=2, control_connection_timeout=2
    )
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=5).one()
    finally:
        cluster.shutdown()


def cassandra_ring_ready(hosts: list[str], port: int) -> None:
    """Each node answers CQL, the driver sees it up and it knows every other node of `hosts`;
    and once no member of the ring is missing from `hosts`, each node, as coordinator, finds
    every member alive: a read of system_distributed (replication factor 3) that needs as
    many replicas as there are members."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import Cluster
    from cassandra.query import SimpleStatement

    by_members = {1: ConsistencyLevel.ONE, 2: ConsistencyLevel.TWO, 3: ConsistencyLevel.THREE}
    # No schema or token metadata: on a busy ring, fetching them is most of a probe's time.
    cluster = Cluster(
        contact_points=hosts,
        port=port,
        connect_timeout=2,
        control_connection_timeout=2,
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
    )
    try:
        session = cluster.connect()
        known = {h.address: h for h in cluster.metadata.all_hosts()}
        down = [a for a in hosts if a not in known or not known[a].is_up]
        if down:
            raise ConnectionError(f"the driver sees {down} down")
        for address in hosts:
            peers = session.execute("SELECT peer FROM system.peers_v2", host=known[address])
            members = {address} | {str(row.peer) for row in peers}
            if unknown := set(hosts) - members:
                # A node just up may not know its peers yet: alone, it would pass a read at
                # ONE and then refuse LOCAL_QUORUM, since it counts only itself alive.
                raise ConnectionError(f"{address} does not know {sorted(unknown)} yet")
            if members == set(hosts) and len(members) in by_members:
                every_member = SimpleStatement(
                    "SELECT id FROM system_distributed.repair_history"
                    " WHERE keyspace_name = 'ready' AND columnfamily_name = 'ready' LIMIT 1",
                    consistency_level=by_members[len(members)],
                )
                session.execute(every_member, host=known[address], timeout=5)
    finally:
        cluster.shutdown()


def dns_ready(host: str, port: int, name: str) -> None:
    """An MX lookup answered by the server."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.resolve(name, "MX", lifetime=1)


def smtp_ready(host: str, port: int) -> None:
    """A TCP connection that receives a 220 SMTP greeting."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.settimeout(2)
        banner = sock.recv(512)
        if not banner.startswith(b"220"):
            raise ConnectionError(f"unexpected SMTP banner: {banner[:80]!r}")
        sock.sendall(b"QUIT\r\n")


def process_alive(pid: int) -> bool:
    """True while pid runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state field follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError as exc:
        return f"(cannot read {path}: {exc})\n"


def wait(
    *,
    name: str,
    probe: Callable[[], None],
    timeout_s: float,
    pid: int | None,
    log: Path | None,
) -> int:
    started = time.monotonic()
    deadline = started + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if pid is not None and not process_alive(pid):
            reason = f"process {pid} exited"
            break
        try:
            probe()
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
            time.sleep(POLL_INTERVAL_S)
            continue
        print(f"{time.monotonic() - started:.1f}")
        return 0
    else:
        reason = f"not ready after {timeout_s:.0f} s (last error: {last_error})"
    print(f"error: {name}: {reason}", file=sys.stderr)
    if log is not None:
        print(f"--- last {LOG_TAIL_LINES} lines of {log} ---", file=sys.stderr)
        sys.stderr.write(log_tail(log))
        print("---", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["kafka", "cassandra", "cassandra-ring", "dns", "smtp"])
    parser.add_argument(
        "--host", default="127.0.0.1", help="for cassandra-ring: the nodes, comma-separated"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="inbox.mailstream.test", help="MX name for dns")
    parser.add_argument("--timeout", type=float, required=True, help="seconds")
    parser.add_argument("--pid", type=int, help="stop early if this process exits")
    parser.add_argument("--log", type=Path, help="log whose tail is shown on failure")
    args = parser.parse_args()

    # The drivers log every failed attempt; only the final verdict matters here.
    logging.disable(logging.CRITICAL)

    probes: dict[str, Callable[[], None]] = {
        "kafka": lambda: kafka_ready(args.host, args.port),
        "cassandra": lambda: cassandra_ready(args.host, args.port),
        "cassandra-ring": lambda: cassandra_ring_ready(args.host.split(","), args.port),
        "dns": lambda: dns_ready(args.host, args.port, args.name),
        "smtp": lambda: smtp_ready(args.host, args.port),
    }
    return wait(
        name=args.kind,
        probe=probes[args.kind],
        timeout_s=args.timeout,
        pid=args.pid,
        log=args.log,
    )


if __name__ == "__main__":
    sys.exit(main())
