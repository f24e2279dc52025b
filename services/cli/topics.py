"""mailstream topics create|describe"""

from __future__ import annotations

import click

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
    for name, state in sorted(result.items()):
        click.echo(f"{state.split()[0]:8} {name}{state[len(state.split()[0]) :]}")


@topics.command(help="Show each topic and its partition count.")
def describe() -> None:
    missing = 0
    settings = load()
    for state in describe_topics(settings.kafka, topics_of(settings)):
        shown = "missing" if state.partitions is None else f"{state.partitions} partitions"
        missing += state.partitions is None
        click.echo(f"{state.name:45} {shown}")
    if missing:
        raise SystemExit(1)
