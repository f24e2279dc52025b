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


class _EveryCommand(click.Group):
    """The top-level help lists every command, subcommands by their full path, so one
    `mailstream --help` shows all there is to run."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []

        def walk(group: click.Group, prefix: str, context: click.Context) -> None:
            for name in group.list_commands(context):
                command = group.get_command(context, name)
                if command is None or command.hidden:
                    continue
                path = f"{prefix}{name}"
                if isinstance(command, click.Group):
                    walk(
                        command, f"{path} ", click.Context(command, parent=context, info_name=name)
                    )
                else:
                    rows.append((path, command.get_short_help_str(limit=56)))

        walk(self, "", ctx)
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=_EveryCommand,
    help="Operate mailstream: topics, database, tenants, templates, suppressions, tracing, "
    "dead letters, the dev inbox. `mailstream COMMAND --help` tells more of each.",
)
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
