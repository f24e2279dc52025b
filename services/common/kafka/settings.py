"""librdkafka configuration dictionaries built from KafkaSettings."""

from __future__ import annotations

from typing import Any

from services.common.config import KafkaSettings


def _common(s: KafkaSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": s.bootstrap_servers,
        "client.id": s.client_id,
        "security.protocol": s.security_protocol,
    }
    optional = {
        "sasl.mechanism": s.sasl_mechanism,
        "sasl.username": s.sasl_username,
        "sasl.password": s.sasl_password.get_secret_value() if s.sasl_password else None,
        "ssl.ca.location": s.ssl_ca_location,
        "ssl.certificate.location": s.ssl_certificate_location,
        "ssl.key.location": s.ssl_key_location,
        "ssl.key.password": s.ssl_key_password.get_secret_value() if s.ssl_key_password else None,
    }
    conf.update({k: v for k, v in optional.items() if v is not None})
    return conf


def producer_config(s: KafkaSettings, *, urgent: bool = False) -> dict[str, Any]:
    """The producer's configuration; urgent: the client for the outputs of critical lanes."""
    return _common(s) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": s.urgent_linger_ms if urgent else s.linger_ms,
        "compression.type": "lz4",
        # Client-side limit; each topic's max.message.bytes is the broker-side one.
        "message.max.bytes": s.max_record_bytes + 64 * 1024,
        # Fail loudly instead of retrying forever: an undelivered output crashes the service.
        "delivery.timeout.ms": 120_000,
    }


def consumer_config(s: KafkaSettings, *, group_id: str) -> dict[str, Any]:
    return _common(s) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": s.session_timeout_ms,
        "max.poll.interval.ms": s.max_poll_interval_ms,
        "fetch.wait.max.ms": 50,
        # librdkafka prefetches up to 64 MB per consumer by default; a bulk lane held back by
        # a busier, more urgent one filled that with 9 KB delivery tasks (the sender's peak
        # RSS rose from 154 to 236 MB in a 50,000-message run). A few MB keep it fed.
        "queued.max.messages.kbytes": s.prefetch_kbytes,
        # ...and a fetch adds to the queue whole, decompressed, even when it passes that
        # bound: what one may bring is the lever (a larger first batch still comes whole).
        "max.partition.fetch.bytes": s.fetch_partition_kbytes * 1024,
        "enable.partition.eof": False,
        # librdkafka 2.16 can lose the metadata request a group join waits for (when the
        # bootstrap connection is replaced by the broker's own just then, as on a start while
        # the broker is down); the join then waits for the next periodic refresh, 5 min by
        # default. A short interval bounds that wait.
        "topic.metadata.refresh.interval.ms": s.metadata_refresh_ms,
    }


def admin_config(s: KafkaSettings) -> dict[str, Any]:
    return _common(s)
