"""Prometheus metrics, defined once here (names are part of what operators rely on); each
service exports them on its health listener's /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
    "mailstream_events_total", "EmailEvents published on email.events", ["type", "priority"]
)
