"""mailstream topics create|describe"""

from __future__ import annotations

import click

from services.cli.output import table
from services.cli.settings import load
from services.common.config import CommonSettings
from services.common.kafka.admin import create_topics, describe_topics
from services.common.kafka.topics import Topics


def topics_of(settings: CommonSettings) -> Topics:
    return Topics(settings.kafka.topic_prefix, settings.delay_tiers_s)


@click.group(help="Kafka topics mailstream uses.")
def topics() -> None:
    pass


@topics.command(
    help="Create every missing topic (partitions, retention and record size from settings) and "
    "set the retention and record size of existing ones where they differ."
)
def create() -> None:
    settings = load()
    result = create_topics(settings.kafka, topics_of(settings))
    rows = []
    for name, state in sorted(result.items()):
        verb, _, keys = state.partition(" ")
        rows.append((verb, name, keys))
    table(["STATE", "TOPIC", "CONFIGS SET"], rows)


@topics.command(help="Show each topic and its partition count (exit 1 if any is missing).")
def describe() -> None:
    settings = load()
    states = describe_topics(settings.kafka, topics_of(settings))
    table(
        ["TOPIC", "PARTITIONS"],
        [(s.name, "missing" if s.partitions is None else s.partitions) for s in states],
        right=["PARTITIONS"],
    )
    if any(s.partitions is None for s in states):
        raise SystemExit(1)
