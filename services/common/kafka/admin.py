"""Topic provisioning and description for `mailstream topics`."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

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
    """Creates every mailstream topic that is missing, and sets on existing ones any of the
    spec's configs (retention, max.message.bytes) that differ, e.g. after an upgrade raised
    them. Returns name -> created|exists|updated <keys>. Partition counts of existing topics
    are never changed: more partitions would move keys, and so reorder a message's steps."""
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
    existing = [spec for spec in specs if result.get(spec.name) == "exists"]
    for name, keys in _align_configs(admin, existing, timeout_s).items():
        result[name] = f"updated {','.join(keys)}"
    return result


def _align_configs(
    admin: AdminClient, specs: list[TopicSpec], timeout_s: float
) -> dict[str, list[str]]:
    """Sets each spec's configs where the topic's differ; returns name -> keys changed."""
    if not specs:
        return {}
    wanted = {spec.name: spec.config for spec in specs}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    changes: dict[str, dict[str, str]] = {}
    try:
        for resource, future in admin.describe_configs(
            resources, request_timeout=timeout_s
        ).items():
            current = {k: entry.value for k, entry in future.result().items()}
            diff = {k: v for k, v in wanted[resource.name].items() if current.get(k) != v}
            if diff:
                changes[resource.name] = diff
        if not changes:
            return {}
        alters = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                    for k, v in sorted(diff.items())
                ],
            )
            for name, diff in changes.items()
        ]
        for future in admin.incremental_alter_configs(alters, request_timeout=timeout_s).values():
            future.result()
    except KafkaException as exc:
        raise TransientError(f"aligning topic configs: {exc}") from exc
    return {name: sorted(diff) for name, diff in changes.items()}


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
