"""mailstream's four services in a universe of their own (topic prefix and keyspace) on the
local stack, pointed at a benchmark's SMTP peer, with a bench tenant signing RSA-2048 DKIM
and a templated 4 KB body; and collectors of the Kafka records each hop writes."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, wait_until
from bench.peers import DNS_TTL_S, Dns
from services.client import EmailClient, Priority, TemplateRef, new_request
from services.common.avro.codec import AvroCodec
from services.common.avro.records import EmailEvent, EmailRequested
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.cassandra.migrations import migrate
from services.common.cassandra.session import connect
from services.common.config import CommonSettings
from services.common.kafka.admin import create_topics
from services.common.kafka.topics import Topics
from tests.integration.harness import ServiceProcess, TopicCollector, base_env, mailstream
from tests.stack import SERVICES, make_dkim_keys

TENANT = "bench"
SENDER = "news@bench.mailstream.test"
UNSUBSCRIBE = {"List-Unsubscribe": "<https://bench.mailstream.test/u/1>"}
BODY_LINE = "Your order {{ order }} has shipped and will arrive on {{ day }}. Thank you!\n"


def template_yaml(body_bytes: int) -> str:
    lines = max(1, body_bytes // len(BODY_LINE))
    text = "Hello {{ name }},\n" + BODY_LINE * lines
    return json.dumps(
        {
            "templates": [
                {
                    "tenant": TENANT,
                    "name": "receipt",
                    "locale": "en",
                    "default_locale": "en",
                    "required": ["name", "order", "day"],
                    "subject": "Order {{ order }} shipped",
                    "text": text,
                }
            ]
        }
    )


def settings_from(env: dict[str, str]) -> CommonSettings:
    """The settings the services will read from `env`, for this process's own clients."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MAILSTREAM_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("MAILSTREAM_")})
    try:
        return CommonSettings()
    finally:
        for key in [k for k in os.environ if k.startswith("MAILSTREAM_")]:
            del os.environ[key]
        os.environ.update(saved)


@dataclass
class Hop:
    """One record a hop wrote: which message, and the broker's timestamp."""

    message_id: str
    timestamp_ms: int


class Pipeline:
    def __init__(
        self, *, smtp_port: int, body_bytes: int = 4096, dns_ttl_s: int = DNS_TTL_S, **env: str
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-{run}-"))
        self.dns = Dns(ttl_s=dns_ttl_s)
        self.env = base_env(
            MAILSTREAM_KAFKA__TOPIC_PREFIX=f"bench{run}.",
            MAILSTREAM_CASSANDRA__KEYSPACE=f"bench_{run}",
            MAILSTREAM_SMTP__PORT=str(smtp_port),
            MAILSTREAM_DNS__NAMESERVERS="127.0.0.1",
            MAILSTREAM_DNS__PORT=str(self.dns.port),
            **env,
        )
        self.settings = settings_from(self.env)
        self.topics = Topics(self.settings.kafka.topic_prefix, self.settings.delay_tiers_s)
        self.serde = RecordSerde(
            codec=AvroCodec(registry=SchemaRegistry(schemas_dir=REPO / "schemas"))
        )
        self.body_bytes = body_bytes
        self.procs: dict[str, ServiceProcess] = {}
        self.collectors: dict[str, TopicCollector] = {}

    def provision(self) -> None:
        create_topics(self.settings.kafka, self.topics)
        cluster, session = connect(self.settings.cassandra)
        try:
            migrate(session, self.settings.cassandra)
        finally:
            cluster.shutdown()
        rsa_pem, _ = make_dkim_keys()
        (self.folder / "bench-rsa.pem").write_bytes(rsa_pem)
        tenants = self.folder / "tenants.yaml"
        tenants.write_text(
            json.dumps(
                {
                    "tenants": [
                        {
                            "id": TENANT,
                            "sender_domains": [
                                {
                                    "domain": "bench.mailstream.test",
                                    "dkim": [
                                        {
                                            "selector": "b2026",
                                            "algorithm": "rsa-sha256",
                                            "private_key_file": str(self.folder / "bench-rsa.pem"),
                                        }
                                    ],
                                }
                            ],
                        }
                    ]
                }
            )
        )
        mailstream(self.env, "tenants", "apply", "-f", str(tenants), check=True)
        templates = self.folder / "templates.yaml"
        templates.write_text(template_yaml(self.body_bytes))
        mailstream(self.env, "templates", "apply", "-f", str(templates), check=True)

    def client(self) -> EmailClient:
        return EmailClient(kafka=self.settings.kafka)

    def request(self, i: int, tag: str, *, order: str | None = None) -> EmailRequested:
        """order lands in the Subject ("Order <order> shipped"): a probe-* order marks the
        message for ArrivalsMx."""
        data = {"name": f"User {i}", "order": order or str(i), "day": "Friday"}
        return new_request(
            tenant_id=TENANT,
            from_address=SENDER,
            to=f"user{i}@inbox.mailstream.test",
            message_id=f"{tag}-{i:07d}",
            template=TemplateRef("receipt"),
            template_data_json=json.dumps(data),
            headers=UNSUBSCRIBE,
        )

    def publish(self, client: EmailClient, priority: Priority, request: EmailRequested) -> None:
        client.send(request, priority=priority, wait=False)

    def collect(self, names: tuple[str, ...] = ("events", "route", "deliver")) -> None:
        """Events (decoded) and the route and deliver records (key and timestamp only), or
        only the collectors named."""

        def hop(m: Any) -> Hop:
            return Hop(m.key.decode() if m.key else "", m.timestamp_ms)

        def event(m: Any) -> tuple[EmailEvent, int]:
            return self.serde.decode(EmailEvent, m.value), m.timestamp_ms

        specs = {
            "events": ([self.topics.events], event),
            "route": ([self.topics.route(p) for p in Priority], hop),
            "deliver": ([self.topics.deliver(p) for p in Priority], hop),
        }
        for name, (topics, decode) in specs.items():
            if name not in names:
                continue
            collector = TopicCollector(
                kafka=self.settings.kafka,
                topics=topics,
                group_id=f"bench-{name}-{uuid.uuid4().hex[:6]}",
                decode=decode,
            )
            collector.start()
            self.collectors[name] = collector

    def start(self) -> None:
        self.dns.start()
        for module in SERVICES:
            proc = ServiceProcess(
                module=module, env=self.env, log_path=self.folder / f"{module}.log"
            )
            proc.start()
            self.procs[module] = proc

    def consuming(self) -> bool:
        dead = [m for m, p in self.procs.items() if not p.alive()]
        if dead:
            raise RuntimeError(f"{dead} exited: {self.procs[dead[0]].log_text()[-2000:]}")
        return all(
            p.count_in_log("partitions_assigned") >= SERVICES[m] for m, p in self.procs.items()
        )

    def wait_consuming(self, timeout: float = 120) -> None:
        wait_until("services consuming", self.consuming, timeout)

    def pids(self) -> dict[str, int]:
        return {m.split(".")[-1]: p.proc.pid for m, p in self.procs.items() if p.proc}

    def stop(self) -> None:
        for collector in self.collectors.values():
            collector.stop()
        for proc in self.procs.values():
            proc.stop(30)
        self.dns.stop()


def wait_for_events(pipeline: Pipeline, done: Any, timeout: float, what: str) -> float:
    """Waits until done(events) holds; returns the seconds it took."""
    began = time.monotonic()
    wait_until(what, lambda: done(pipeline.collectors["events"].items), timeout, interval=0.5)
    return time.monotonic() - began
