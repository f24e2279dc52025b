"""The `mailstream` operator command."""

from __future__ import annotations

import sys

import click

from services.cli import (
    db,
    dlq,
    docs,
    inbox,
    send,
    suppressions,
    templates,
    tenants,
    topics,
    trace,
)
from services.common.errors import MailstreamError


@click.group(help="Operate mailstream: topics, database, tenants, tracing, the dev inbox.")
def cli() -> None:
    pass


for command in (
    topics.topics,
    db.db,
    tenants.tenants,
    trace.trace,
    inbox.inbox,
    send.send,
    suppressions.suppressions,
    templates.templates,
    dlq.dlq,
    docs.docs,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except MailstreamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
