"""mailstream docs settings: the settings reference, generated from the settings models."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group(help="Reference documents generated from the code.")
def docs() -> None:
    pass


@docs.command(
    help="Print the settings reference (every MAILSTREAM_* variable), or write it to --output; "
    "--check exits 1 when the file there differs from what the models say."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write it here (docs/reference/settings.md in the repository).",
)
@click.option("--check", is_flag=True, help="Compare with --output instead of writing it.")
def settings(output: Path | None, check: bool) -> None:
    from services.cli import settings_reference  # imports every service's settings

    text = settings_reference.render()
    if output is None:
        if check:
            raise click.UsageError("--check needs --output")
        click.echo(text, nl=False)
        return
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            click.echo(f"{output} is out of date: run mailstream docs settings -o {output}")
            sys.exit(1)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
