"""`mailstream topics create` on an existing installation sets what the settings now ask for:
an upgrade that raised max.message.bytes or a retention needs no kafka-configs by hand."""

from __future__ import annotations

import uuid

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from services.common.config import CommonSettings
from services.common.kafka.admin import admin_client, create_topics
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from tests.integration.harness import wait_until


def _config(settings: CommonSettings, topic: str, key: str) -> str:
    admin = admin_client(settings.kafka)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = next(iter(admin.describe_configs([resource]).values())).result()
    return str(entries[key].value)


def test_create_again_aligns_configs_of_existing_topics(settings: CommonSettings) -> None:
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"up{uuid.uuid4().hex[:8]}."})
    topics = Topics(kafka.topic_prefix, settings.delay_tiers_s)
    first = create_topics(kafka, topics)
    assert set(first.values()) == {"created"}
    assert set(create_topics(kafka, topics).values()) == {"exists"}

    # An installation from before the record size was raised, and a shortened retention.
    deliver = topics.deliver(Priority.BULK)
    old = ConfigResource(
        ResourceType.TOPIC,
        deliver,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in {"max.message.bytes": "1048588", "retention.ms": "60000"}.items()
        ],
    )
    admin = admin_client(kafka)
    for future in admin.incremental_alter_configs([old]).values():
        future.result()
    # A config change reaches the broker's view of it a moment after the call returns.
    wait_until(
        "the old record size in place",
        lambda: _config(settings, deliver, "max.message.bytes") == "1048588",
        10,
    )

    again = create_topics(kafka, topics)
    assert again[deliver] == "updated max.message.bytes,retention.ms"
    assert {state for name, state in again.items() if name != deliver} == {"exists"}
    wait_until(
        "the settings' record size and retention",
        lambda: (
            _config(settings, deliver, "max.message.bytes") == str(kafka.max_record_bytes)
            and _config(settings, deliver, "retention.ms") == str(kafka.requests_retention_ms)
        ),
        10,
    )
    assert set(create_topics(kafka, topics).values()) == {"exists"}
