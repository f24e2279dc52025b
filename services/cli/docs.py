"""mailstream docs settings|reasons: the reference documents generated from the code."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group(help="Reference documents generated from the code.")
def docs() -> None:
    pass


def _emit(text: str, output: Path | None, check: bool, command: str) -> None:
    """Print text, write it to output, or (check) exit 1 when output differs from it."""
    if output is None:
        if check:
            raise click.UsageError("--check needs --output")
        click.echo(text, nl=False)
        return
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            click.echo(f"{output} is out of date: run {command} -o {output}")
            sys.exit(1)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write it here (the file under docs/reference/ in the repository).",
)
_CHECK = click.option("--check", is_flag=True, help="Compare with --output instead of writing it.")


@docs.command(
    help="Print the settings reference (every MAILSTREAM_* variable), or write it to --output; "
    "--check exits 1 when the file there differs from what the models say."
)
@_OUTPUT
@_CHECK
def settings(output: Path | None, check: bool) -> None:
    from services.cli import settings_reference  # imports every service's settings

    _emit(settings_reference.render(), output, check, "mailstream docs settings")


@docs.command(
    help="Print the reason-code table (every code, its event, service and fate), or write it "
    "to --output; --check exits 1 when the file there differs from the Reason enum."
)
@_OUTPUT
@_CHECK
def reasons(output: Path | None, check: bool) -> None:
    from services.common.reasons.doc import render

    _emit(render(), output, check, "mailstream docs reasons")
