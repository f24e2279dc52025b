"""The real stack for the integration, chaos and security suites: Kafka, Cassandra and dnsmasq
started by the project's own deploy/local/stack (never skipped: if they cannot start, the run
fails with the reason), with a fresh topic prefix and keyspace per run, recording SMTP servers
and the four services."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from services.client import EmailClient
from services.common.avro.codec import AvroCodec
from services.common.avro.records import EmailEvent
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.cassandra.migrations import migrate
from services.common.cassandra.session import connect
from services.common.config import CommonSettings
from services.common.kafka.admin import create_topics
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from tests.integration.harness import (
    REPO,
    PolicyServer,
    RecordingSmtp,
    ServiceProcess,
    TopicCollector,
    base_env,
    events_for,
    mailstream,
    wait_until,
)
from tests.integration.tls_certs import TestCertificates, make_certificates

# Suites that run against the real stack; each of their tests carries the integration marker.
REAL_STACK_SUITES = ("integration", "chaos", "security")
# Messages per second of the test provider class that slow.mailstream.test belongs to.
SLOW_RATE = 4

SERVICES = {  # module -> lanes it runs (each logs partitions_assigned once it is consuming)
    "services.ingest": 3,
    "services.router": 7,
    "services.sender": 3,
    "services.event_publisher": 4,
}
TENANTS_YAML = """
tenants:
  - id: acme
    sender_domains:
      - domain: acme.mailstream.test
        dkim:
          - {selector: s2026, algorithm: rsa-sha256, private_key_file: keys/acme-rsa.pem}
          - {selector: e2026, algorithm: ed25519-sha256, private_key_file: keys/acme-ed25519.key}
  - id: other
    sender_domains:
      - domain: other.mailstream.test
    limits: {bulk_per_second: 5}
  - id: routed
    sender_domains:
      - domain: routed.mailstream.test
    return_path_domain: bounces.routed.mailstream.test
    routing:
      default: {egress_pool: loopback3}
      bulk: {smarthost: relay}
      critical: {egress_pool: undefined-pool}
  - id: badrelay
    sender_domains:
      - domain: badrelay.mailstream.test
    routing:
      default: {smarthost: relay-wrong-password}
"""
# The source address the loopback3 egress pool binds to (all of 127/8 is loopback on Linux).
EGRESS_SOURCE = "127.0.0.3"
RELAY_LOGIN = ("acme-relay", "relay-secret")
# MTA-STS policies the test policy server publishes, by domain (deploy/local/dnsmasq.conf
# publishes their _mta-sts TXT records and policy hosts).
MTA_STS_POLICIES = {
    "sts-enforce.mailstream.test": "version: STSv1\nmode: enforce\nmx: mx.mailstream.test\n"
    "max_age: 86400\n",
    "sts-badcert.mailstream.test": "version: STSv1\nmode: enforce\nmx: badcert.mailstream.test\n"
    "max_age: 86400\n",
    "sts-mismatch.mailstream.test": "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\n"
    "max_age: 86400\n",
    "sts-testing.mailstream.test": "version: STSv1\nmode: testing\nmx: *.elsewhere.test\n"
    "max_age: 86400\n",
}


def make_dkim_keys() -> tuple[bytes, bytes]:
    """An RSA-2048 PEM and an Ed25519 seed in dknewkey's format (base64 of 32 bytes)."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return rsa_pem, base64.b64encode(seed)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"tests/{suite}/" in str(item.fspath) for suite in REAL_STACK_SUITES):
            item.add_marker(pytest.mark.integration)
    # A busy test (minutes of work it times itself) runs after the ordinary ones; a test that
    # leaves a backlog behind after those, so it slows no other test; a disruptive one (it
    # stops the session's services, restarts Kafka, stops Cassandra) last.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("disruptive") is not None,
            item.get_closest_marker("leaves_backlog") is not None,
            item.get_closest_marker("busy") is not None,
        )
    )


@pytest.fixture(scope="session")
def stack() -> None:
    result = subprocess.run(
        [str(REPO / "deploy" / "local" / "stack"), "up", "kafka", "cassandra", "dns"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(
            f"the local stack did not start:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(
        tmp_path_factory.mktemp("tls"),
        hostnames=[
            "mx.mailstream.test",
            "relay.mailstream.test",
            *(f"mta-sts.{domain}" for domain in MTA_STS_POLICIES),
        ],
    )


def _server_context(certificates: TestCertificates) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    return context


@pytest.fixture(scope="session")
def smtp(certificates: TestCertificates) -> Iterator[RecordingSmtp]:
    """Offers STARTTLS with a certificate for mx.mailstream.test from a test CA."""
    server = RecordingSmtp(tls_context=_server_context(certificates))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def relay(certificates: TestCertificates) -> Iterator[RecordingSmtp]:
    """The smarthost: STARTTLS as relay.mailstream.test, and AUTH required."""
    server = RecordingSmtp(tls_context=_server_context(certificates), credentials=RELAY_LOGIN)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def policy_server(certificates: TestCertificates) -> Iterator[PolicyServer]:
    server = PolicyServer(tls_context=_server_context(certificates), policies=MTA_STS_POLICIES)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def env(
    stack: None,
    smtp: RecordingSmtp,
    relay: RecordingSmtp,
    policy_server: PolicyServer,
    run_id: str,
    certificates: TestCertificates,
) -> Iterator[dict[str, str]]:
    values = base_env(
        MAILSTREAM_KAFKA__TOPIC_PREFIX=f"it{run_id}.",
        MAILSTREAM_CASSANDRA__KEYSPACE=f"it_{run_id}",
        MAILSTREAM_SMTP__PORT=str(smtp.port),
        MAILSTREAM_SMTP__TLS_CA_FILE=str(certificates.ca_file),
        MAILSTREAM_SMTP__TLS_REQUIRED_DOMAINS="tls-required.mailstream.test,tls-badcert.mailstream.test",
        MAILSTREAM_SMTP__PROVIDER_CLASSES_EXTRA=json.dumps(
            [
                {
                    "name": "slowtest",
                    "pattern": r"^slow\.mailstream\.test$",
                    "connections": 1,
                    "messages_per_second": SLOW_RATE,
                }
            ]
        ),
        MAILSTREAM_ROUTING__EGRESS_POOLS=json.dumps(
            {"loopback3": {"source_addresses": [EGRESS_SOURCE]}}
        ),
        MAILSTREAM_ROUTING__SMARTHOSTS=json.dumps(
            {
                "relay": {
                    "host": "relay.mailstream.test",
                    "port": relay.port,
                    "tls": "required",
                    "username": RELAY_LOGIN[0],
                    "password": RELAY_LOGIN[1],
                },
                "relay-wrong-password": {
                    "host": "relay.mailstream.test",
                    "port": relay.port,
                    "username": RELAY_LOGIN[0],
                    "password": "not-the-password",
                },
            }
        ),
        MAILSTREAM_MTA_STS__HTTPS_PORT=str(policy_server.port),
        MAILSTREAM_MTA_STS__CA_FILE=str(certificates.ca_file),
        MAILSTREAM_DELAY_TIERS_S="[1,2,4]",
        MAILSTREAM_KAFKA__PARTITIONS="3",
    )
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    yield values
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def settings(env: dict[str, str]) -> CommonSettings:
    return CommonSettings()


def provision(settings: CommonSettings, env: dict[str, str], folder: Path) -> None:
    """Topics, keyspace and the test tenants (with fresh DKIM keys) for one universe."""
    create_topics(settings.kafka, Topics(settings.kafka.topic_prefix, settings.delay_tiers_s))
    cluster, session = connect(settings.cassandra)
    try:
        migrate(session, settings.cassandra)
    finally:
        cluster.shutdown()
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    rsa_pem, ed_seed = make_dkim_keys()
    (folder / "keys" / "acme-rsa.pem").write_bytes(rsa_pem)
    (folder / "keys" / "acme-ed25519.key").write_bytes(ed_seed)
    tenants = folder / "tenants.yaml"
    tenants.write_text(TENANTS_YAML)
    mailstream(env, "tenants", "apply", "-f", str(tenants), check=True)


@pytest.fixture(scope="session")
def provisioned(
    settings: CommonSettings, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The folder of the applied tenants file and its DKIM keys."""
    folder = tmp_path_factory.mktemp("tenants")
    provision(settings, env, folder)
    return folder


@pytest.fixture(scope="session")
def services(
    provisioned: None, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("service-logs")
    procs = {m: ServiceProcess(module=m, env=env, log_path=logs / f"{m}.log") for m in SERVICES}
    for proc in procs.values():
        proc.start()

    def ready() -> bool:
        for module, proc in procs.items():
            if not proc.alive():
                raise AssertionError(f"{module} exited:\n{proc.log_text()[-3000:]}")
        return all(p.count_in_log("partitions_assigned") >= SERVICES[m] for m, p in procs.items())

    wait_until("services to be consuming", ready, 90)
    yield procs
    # Stop every service before judging any: an assertion here must not leave others running.
    codes = {module: proc.stop() for module, proc in procs.items()}
    bad = {m: (c, procs[m].log_text()[-2000:]) for m, c in codes.items() if c != 0}
    assert not bad, f"services did not exit 0 on SIGTERM: {bad}"


@pytest.fixture(scope="session")
def serde() -> RecordSerde:
    return RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=REPO / "schemas")))


@pytest.fixture(scope="session")
def topics(settings: CommonSettings) -> Topics:
    return Topics(settings.kafka.topic_prefix, settings.delay_tiers_s)


@pytest.fixture(scope="session")
def events(
    settings: CommonSettings, topics: Topics, serde: RecordSerde, services: object
) -> Iterator[TopicCollector]:
    collector = TopicCollector(
        kafka=settings.kafka,
        topics=[topics.events],
        group_id=f"test-events-{uuid.uuid4().hex[:6]}",
        decode=lambda m: serde.decode(EmailEvent, m.value),
    )
    collector.start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def dlq(settings: CommonSettings, topics: Topics, provisioned: None) -> Iterator[TopicCollector]:
    collector = TopicCollector(
        kafka=settings.kafka,
        topics=[topics.requests_dlq],
        group_id=f"test-dlq-{uuid.uuid4().hex[:6]}",
        decode=lambda m: m,
    )
    collector.start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def client(settings: CommonSettings, provisioned: None) -> Iterator[EmailClient]:
    with EmailClient(kafka=settings.kafka) as c:
        yield c


__all__ = ["Inbound", "Path", "events_for"]


@pytest.fixture(autouse=True)
def services_stay_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """A service that crashed during a test fails that test with its log, not a later one."""
    yield
    if "services" in request.fixturenames and request.node.get_closest_marker("disruptive") is None:
        procs: dict[str, ServiceProcess] = request.getfixturevalue("services")
        dead = {m: p.log_text()[-2000:] for m, p in procs.items() if not p.alive()}
        assert not dead, f"services died during the test: {dead}"
