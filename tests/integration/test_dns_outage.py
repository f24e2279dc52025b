"""The router's DNS resolver answering nothing is an outage: mail waits in the lane (not
deferred, bounced or expired), the router stays up and not ready naming the lane, and the
mail goes out on its first attempt once the resolver answers again.

The shared dnsmasq must not be stopped, so the test runs a universe of its own (topics,
keyspace, the four services) whose router asks a UDP relay of the test's: it drops every
query during the outage, then relays them to dnsmasq."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from services.client import EmailClient, Priority, new_request
from services.common.avro.records import EventType
from services.common.avro.serde import RecordSerde
from services.common.config import CommonSettings
from tests.chaos.universe import collect_events, new_universe
from tests.integration.harness import (
    RecordingSmtp,
    ServiceProcess,
    events_for,
    wait_until,
)
from tests.stack import SERVICES

pytestmark = pytest.mark.timeout(300)

LANE = f"lane-router-{Priority.TRANSACTIONAL.slug}"
OUTAGE_S = 15  # how long the outage lasts after the router first says it waits


class DnsRelay:
    """A UDP 'resolver' on loopback: drops every query while down, else relays each to the
    upstream server and its answer back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.down = True
        self.dropped = 0
        self.relayed = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            if self.down:
                self.dropped += 1
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2.0)
                up.sendto(query, self.upstream)
                try:
                    answer, _ = up.recvfrom(65535)
                except TimeoutError:
                    continue
            self._sock.sendto(answer, client)
            self.relayed += 1


def test_a_resolver_outage_makes_mail_wait_not_defer(
    settings: CommonSettings,
    env: dict[str, str],
    smtp: RecordingSmtp,
    serde: RecordSerde,
    tmp_path: Path,
) -> None:
    universe = new_universe(settings, env, tmp_path, name="dnsout")
    relay = DnsRelay((env["MAILSTREAM_DNS__NAMESERVERS"], int(env["MAILSTREAM_DNS__PORT"])))
    relay.start()
    router_env = universe.env | {
        "MAILSTREAM_DNS__NAMESERVERS": "127.0.0.1",
        "MAILSTREAM_DNS__PORT": str(relay.port),
        "MAILSTREAM_DNS__TIMEOUT_S": "1",
        "MAILSTREAM_DNS__PROBE_TIMEOUT_S": "1",
        "MAILSTREAM_KAFKA__INFRA_BACKOFF_MAX_S": "2",
    }
    procs = {
        m: ServiceProcess(
            module=m,
            env=router_env if m == "services.router" else universe.env,
            log_path=tmp_path / f"{m}.log",
        )
        for m in SERVICES
    }
    router = procs["services.router"]
    events = collect_events(universe, serde)
    try:
        for proc in procs.values():
            proc.start()

        def consuming() -> bool:
            for module, proc in procs.items():
                assert proc.alive(), f"{module} exited:\n{proc.log_text()[-3000:]}"
            return all(
                p.count_in_log("partitions_assigned") >= SERVICES[m] for m, p in procs.items()
            )

        wait_until("the universe's services to be consuming", consuming, 90)
        mid = f"{universe.tag}{uuid.uuid4().hex[:6]}"
        with EmailClient(kafka=universe.settings.kafka) as client:
            client.send(
                new_request(
                    tenant_id="acme",
                    from_address="hello@acme.mailstream.test",
                    to="dns-outage@inbox.mailstream.test",
                    message_id=mid,
                    subject=f"dns outage {mid}",
                    text_body="x",
                ),
                priority=Priority.TRANSACTIONAL,
            )

        def lane_waits() -> bool:
            status, report = router.readiness()
            check = report.get("checks", {}).get(LANE, {})
            return status == 503 and not check.get("ok", True)

        wait_until("the router to report its lane waiting for DNS", lane_waits, 45)
        detail = router.readiness()[1]["checks"][LANE]["detail"]
        assert detail.startswith("waiting for the infrastructure: ResolverUnavailable: ")
        assert f"port {relay.port} does not answer: MX inbox.mailstream.test" in detail
        time.sleep(OUTAGE_S)
        # Still waiting: up, not ready, the lane named, and no outcome given to the mail.
        assert router.alive(), router.log_text()[-3000:]
        assert lane_waits()
        during = [e.type for e in events_for(events.items, mid)]
        assert during == [EventType.ACCEPTED], during
        assert router.count_in_log('"dns_resolver_unavailable"') == 1
        assert router.count_in_log('"infrastructure_wait"') >= 3
        assert not any(mid.encode() in m.data for m in smtp.messages)

        relay.down = False
        items = events.wait_for(
            "DELIVERED once the resolver answers",
            lambda xs: any(e.type is EventType.DELIVERED for e in events_for(xs, mid)),
            timeout=45,
        )
        mine = events_for(items, mid)
        assert [e.type for e in mine] == [EventType.ACCEPTED, EventType.DELIVERED]
        assert mine[-1].attempt == 1
        assert sum(mid.encode() in m.data for m in smtp.messages) == 1
        wait_until("the router to be ready again", lambda: router.readiness()[0] == 200, 30)
        assert relay.dropped > 0 and relay.relayed > 0
        assert "Traceback" not in router.log_text()
    finally:
        events.stop()
        codes = {m: p.stop() for m, p in procs.items()}
        relay.stop()
    assert all(code == 0 for code in codes.values()), codes
