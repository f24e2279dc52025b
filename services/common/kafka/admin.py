"""Topic provisioning and description for `mailstream topics`."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.common.config import KafkaSettings
from services.common.errors import TransientError
from services.common.kafka.settings import admin_config
from services.common.kafka.topics import Topics, TopicSpec


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int | None  # None: the topic does not exist


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(admin_config(settings))


def create_topics(
    settings: KafkaSettings, topics: Topics, *, timeout_s: float = 30.0
) -> dict[str, str]:
    """Creates every mailstream topic that is missing; returns name -> created|exists."""
    admin = admin_client(settings)
    specs = topics.specs(settings)
    futures = admin.create_topics(
        [_new_topic(spec, settings) for spec in specs],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    result: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result()
            result[name] = "created"
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                result[name] = "exists"
            else:
                raise TransientError(f"creating {name}: {error.str()}") from exc
    return result


def describe_topics(
    settings: KafkaSettings, topics: Topics, *, timeout_s: float = 10.0
) -> list[TopicState]:
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TransientError(f"Kafka at {settings.bootstrap_servers} unreachable: {exc}") from exc
    specs = topics.specs(settings)
    states = []
    for spec in specs:
        topic = metadata.topics.get(spec.name)
        states.append(
            TopicState(spec.name, len(topic.partitions) if topic and not topic.error else None)
        )
    return states


def _new_topic(spec: TopicSpec, settings: KafkaSettings) -> NewTopic:
    return NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=settings.replication_factor,
        config=spec.config,
    )
