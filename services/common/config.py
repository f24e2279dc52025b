"""Settings shared by every service; the only place environment variables are read."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.cassandra.retention import RetentionSettings
from services.common.priority import Priority

REPO_ROOT = Path(__file__).resolve().parents[2]


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The brokers to connect to first, host:port separated by commas.
    bootstrap_servers: str = "127.0.0.1:19092"
    # Prefixes every topic and consumer group, so installations can share one cluster.
    topic_prefix: str = ""
    # The client.id the brokers see (their logs, quotas); operator commands that read a
    # topic do so as the group <client_id>-reader.
    client_id: str = "mailstream"
    # How clients connect to the brokers: TLS, SASL, both or neither.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # SASL mechanism, e.g. SCRAM-SHA-512 or PLAIN, for the SASL protocols.
    sasl_mechanism: str | None = None
    sasl_username: str | None = None  # the SASL user
    sasl_password: SecretStr | None = None  # the SASL user's password
    # CA certificate file (PEM) to verify the brokers with; None: the system's.
    ssl_ca_location: str | None = None
    # Client certificate (PEM) and its key, when the brokers ask for one.
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None  # the client certificate's private key (PEM)
    ssl_key_password: SecretStr | None = None  # the password of that key, if it has one
    # The largest record mailstream produces: a delivery task carries the built message,
    # which the router keeps under max_message_bytes (set on the topics that carry one).
    max_record_bytes: int = 8 * 1024 * 1024
    # Producer batching: a few ms of linger trades a little latency for far fewer requests.
    linger_ms: float = Field(default=2.0, ge=0)
    # The linger of the outputs of critical lanes, which go through a client of their own:
    # a lone OTP is not worth waiting for company (a Kafka hop: 3.3 ms p50 at 2 ms of linger,
    # 1.1 ms at none, on loopback).
    urgent_linger_ms: float = Field(default=0.0, ge=0)
    # Messages one lane may have in flight (consumed, not yet acknowledged downstream).
    # Bulk lanes get a small window: what they have in flight queues at shared resources
    # (Cassandra, SMTP hosts) ahead of critical work, so it bounds the wait critical mail sees.
    max_in_flight: int = 500
    bulk_max_in_flight: int = 16  # the window of a bulk lane
    # Record bytes a lane that carries built messages (the sender's) may hold in flight. Each
    # in flight holds several copies of its message (the record, the decoded task, the signed
    # bytes, the SMTP buffers): 500 records of 1 MB would be gigabytes; 4 KB ones stay under it.
    # Every recipient's task carries the whole message, so one 1 MB request to 60 recipients
    # is 60 MB: a budget much below that holds a lane to a few sends while slow hosts answer.
    max_in_flight_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    # While a more urgent lane of the same process is active, a less urgent one keeps at most
    # this many in flight (strict priority, never quite starving); "active" means it took a
    # message within the last precedence_hold_s and still has work in flight.
    outranked_max_in_flight: int = 2
    precedence_hold_s: float = 2.0  # how recently a lane must have taken a message to outrank
    # Most messages a lane takes from its consumer at once.
    consume_batch: int = 200
    # What each consumer may prefetch and hold in memory beyond what it has taken.
    prefetch_kbytes: int = 4096
    # The most a consumer asks the broker for per partition in one fetch, compressed. A fetch
    # lands whole in the prefetch queue, past the bound above, and lz4 batches of templated
    # mail inflate many times over: at librdkafka's 1 MB, librdkafka's statistics counted up
    # to 126 MB in one sender consumer's queue (28 MB at 64 KB; bench/README.md).
    fetch_partition_kbytes: int = Field(default=64, ge=1)
    # How often a lane commits the offsets of what it has finished.
    commit_interval_s: float = 1.0
    # On SIGTERM, how long a lane may take to finish, flush and commit what it has in flight.
    drain_timeout_s: float = 20.0
    # A record whose handling raises anything but an infrastructure error is tried this many
    # times in all, then quarantined to the internal dead-letter topic with a terminal event
    # for its recipients, and the lane moves on (STYLE.md, habit 5).
    handler_attempts: int = 3
    # Infrastructure failures (Kafka, Cassandra, DNS unreachable) are retried in the lane
    # without limit, the wait doubling from the first to the longest backoff.
    infra_backoff_first_s: float = 0.5
    infra_backoff_max_s: float = 15.0  # the longest wait between two of those retries
    # When partitions are revoked (a rebalance: another process joined or left), work in
    # flight on them is finished and committed before the revoke completes, for at most this
    # long; past it, what is left is fenced (it sends nothing more: the new owner redoes it).
    revoke_drain_timeout_s: float = 15.0
    # A send already under way when a drain's time is up (on a revoke or at SIGTERM: past its
    # last ownership check, its SMTP transaction begun) is waited for this much longer, so
    # its 250 is recorded and committed before the partition's new owner looks; longer than
    # the SMTP command timeout (60 s). Past it the process gives up on it, and that recipient
    # may be sent twice.
    started_send_grace_s: float = 75.0
    # A consumer whose heartbeats stop this long is taken out of its group (librdkafka's
    # session.timeout.ms).
    session_timeout_ms: int = 10_000
    # A lane whose window is full of records waiting out an outage does not poll. librdkafka
    # takes a member's partitions away after its default 5 min without a poll, handing work
    # this process is still doing to another member; a crashed process is still noticed
    # within the session timeout (heartbeats run on their own thread).
    max_poll_interval_ms: int = 30 * 60 * 1000
    # How often consumers refresh topic metadata (see consumer_config).
    metadata_refresh_ms: int = 10_000
    # How often each lane updates its consumer lag gauges.
    lag_interval_s: float = 5.0
    # Provisioning defaults for `mailstream topics create`.
    partitions: int = 3
    replication_factor: int = 1  # replicas of each topic's partitions
    # How long email.events keeps the public events.
    events_retention_ms: int = 7 * 24 * 3600 * 1000
    # How long the requests topics and the internal ones keep their records.
    requests_retention_ms: int = 3 * 24 * 3600 * 1000

    def lane_window(self, priority: Priority) -> int:
        return self.bulk_max_in_flight if priority is Priority.BULK else self.max_in_flight


class CassandraSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    hosts: str = "127.0.0.1"  # contact points, separated by commas
    port: int = 19042  # the native protocol port of the contact points
    keyspace: str = "mailstream"  # every table of mailstream is in this keyspace
    # The keyspace's replication, as CQL, used by `mailstream db migrate` to create it.
    replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    username: str | None = None  # for password authentication; None: none
    password: SecretStr | None = None  # that user's password
    # CA certificate file (PEM) to verify the nodes with; set, the driver connects over TLS.
    ssl_ca_file: str | None = None
    # Client certificate (PEM) and its key, when the nodes ask for one.
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None  # the client certificate's private key (PEM)
    # The local datacenter for the driver's load balancing (None: learnt from contact points).
    local_dc: str | None = None
    connect_timeout_s: float = 10.0  # to open a connection to a node
    request_timeout_s: float = 10.0  # for one query's answer
    # Every read and write of every table (why: default_profile in cassandra/session.py). A name
    # of cassandra.ConsistencyLevel, in any case, good for reads and writes alike since one level
    # serves both: not ANY (writes only), EACH_QUORUM (older Cassandras refuse it for reads) nor
    # the serial levels.
    consistency: Literal["ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE", "LOCAL_QUORUM"] = (
        "LOCAL_QUORUM"
    )
    # The Paxos phase of the conditional statements (the message claim, template versions).
    serial_consistency: Literal["SERIAL", "LOCAL_SERIAL"] = "LOCAL_SERIAL"

    @field_validator("consistency", "serial_consistency", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def host_list(self) -> list[str]:
        return [h.strip() for h in self.hosts.split(",") if h.strip()]


class HealthSettings(BaseModel):
    """The /livez, /readyz and /metrics listener (services/common/health.py)."""

    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"  # a pod's probes and Prometheus come from outside it
    port: int = 8080  # 0: any free port, named in the health_listening log line
    enabled: bool = True  # false: no listener (and so no probes or metrics)
    # How often Kafka and Cassandra are probed for /readyz.
    probe_interval_s: float = 2.0


# The retry tiers of the delay topics, in seconds (MAILSTREAM_DELAY_TIERS_S overrides them).
DELAY_TIERS_S: tuple[int, ...] = (60, 300, 1200, 3600, 14400)


class CommonSettings(BaseSettings):
    """Base of every service's settings: `MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS` and so on."""

    model_config = SettingsConfigDict(
        env_prefix="MAILSTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    # The services' event loop: uvloop (libuv) by default, asyncio's own as the fallback.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # How often the process gives the memory it has freed back to the system (glibc's
    # malloc_trim; services/common/memory.py); 0 never does.
    memory_trim_interval_s: float = Field(default=5.0, ge=0)
    # The least severe level logged: debug, info, warning, error or critical.
    log_level: str = "info"
    # auto: JSON lines when standard error is not a terminal, readable lines when it is.
    log_format: Literal["auto", "json", "console"] = "auto"
    # The folder of Avro schemas (.avsc) records are encoded with.
    schemas_dir: Path = REPO_ROOT / "schemas"
    # Maximum encoded size of a request, per the contract (900 KiB).
    max_request_bytes: int = 900 * 1024
    # Retry tiers in seconds (one delay topic each); the last is reused. Tests compress them.
    delay_tiers_s: tuple[int, ...] = DELAY_TIERS_S
    # The longest a message of each priority may wait for delivery before it is EXPIRED.
    max_age_critical_s: int = 15 * 60
    max_age_transactional_s: int = 72 * 3600  # the same for transactional mail
    max_age_bulk_s: int = 24 * 3600  # the same for bulk mail
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
