"""Prometheus metrics, defined once here (names are part of what operators rely on); each
service exports them on its health listener's /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)

CONSUMED = Counter(
    "mailstream_consumed_total", "Records a lane handed to its handler", ["lane", "topic"]
)
PRODUCED = Counter("mailstream_produced_total", "Records produced and acknowledged", ["lane"])
DEAD_LETTERS = Counter(
    "mailstream_dead_letters_total", "Undecodable records sent to the dead-letter topic", ["lane"]
)
HANDLE_SECONDS = Histogram(
    "mailstream_handle_seconds",
    "From consuming a record to every output of it acknowledged",
    ["lane"],
    buckets=_LATENCY_BUCKETS,
)
QUARANTINED = Counter(
    "mailstream_quarantined_total",
    "Records whose handling kept failing, moved to the internal dead-letter topic with a "
    "terminal event for their recipients",
    ["lane", "error_class"],
)
INFRA_WAITS = Counter(
    "mailstream_infrastructure_waits_total",
    "Retries of a record's handling because Kafka, Cassandra or DNS was unavailable",
    ["lane", "error_class"],
)
LANE_FAILURES = Counter(
    "mailstream_lane_failures_total", "Lanes stopped by an error (the service exits)", ["lane"]
)
SMTP_OUTCOMES = Counter(
    "mailstream_smtp_outcomes_total",
    "SMTP attempts by outcome, bounce category and provider class",
    ["outcome", "category", "provider", "priority"],
)
ACCEPTED_TO_DELIVERED = Histogram(
    "mailstream_accepted_to_delivered_seconds",
    "From ingest's acceptance to the MX's 250, per delivered recipient",
    ["priority", "provider"],
    buckets=_LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "mailstream_events_total",
    "EmailEvents this process published on email.events (counted as each is handed to the"
    " producer: a record handled again after a failure counts again)",
    ["type", "priority"],
)
CONSUMER_LAG = Gauge(
    "mailstream_consumer_lag",
    "Records on an assigned partition after the group's committed offset (on a delay topic, "
    "the tasks waiting for their retry time)",
    ["lane", "topic", "partition"],
)
SMTP_CONNECTIONS = Gauge(
    "mailstream_smtp_connections",
    "Open SMTP connections by provider class, busy with a transaction or idle in the pool",
    ["provider", "state"],
)
SMTP_SLOT_WAITERS = Gauge(
    "mailstream_smtp_slot_waiters",
    "Sends waiting for a connection slot: the provider class's connection limit is reached",
    ["provider"],
)
SMTP_RATE_WAIT_SECONDS = Histogram(
    "mailstream_smtp_rate_wait_seconds",
    "How long a send waited for its provider class's message rate",
    ["provider"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
SMTP_RATE_LIMITED = Counter(
    "mailstream_smtp_rate_limited_total",
    "Sends deferred because the provider class's rate would have made them wait too long",
    ["provider"],
)
DKIM_KEYS_UNUSABLE = Gauge(
    "mailstream_dkim_keys_unusable",
    "DKIM keys configured for a sender domain that could not be loaded; its mail is "
    "deferred (dkim_key_unavailable) until they load, never sent unsigned",
    ["domain"],
)
READY_CHECK = Gauge(
    "mailstream_ready_check",
    "1 while a readiness check holds (Kafka, Cassandra, ...), else 0; /readyz needs all",
    ["check"],
)
