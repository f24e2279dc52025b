"""mailstream topics create|describe"""

from __future__ import annotations

import click

from services.cli.settings import load
from services.common.kafka.admin import create_topics, describe_topics


@click.group(help="Kafka topics mailstream uses.")
def topics() -> None:
    pass


@topics.command(help="Create every missing topic (partitions/retention from settings).")
def create() -> None:
    result = create_topics(load().kafka)
    for name, state in sorted(result.items()):
        click.echo(f"{state:8} {name}")


@topics.command(help="Show each topic and its partition count.")
def describe() -> None:
    missing = 0
    for state in describe_topics(load().kafka):
        shown = "missing" if state.partitions is None else f"{state.partitions} partitions"
        missing += state.partitions is None
        click.echo(f"{state.name:45} {shown}")
    if missing:
        raise SystemExit(1)
