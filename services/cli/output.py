"""How the operator command shows tables and progress: rich on a terminal; plain, aligned,
whitespace-separated text when piped, so scripts (and grep, awk) read it line by line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

T = TypeVar("T")


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Sequence[str] = (),
    console: Console | None = None,
) -> None:
    """Prints rows under headers; an empty cell shows as "-". `right`: right-aligned columns."""
    cells = [["-" if c is None or c == "" else str(c) for c in row] for row in rows]
    out = console or _stdout()
    if out.is_terminal:
        shown = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for header in headers:
            shown.add_column(header, justify="right" if header in right else "left")
        for row in cells:
            shown.add_row(*row)
        out.print(shown)
        return
    for line in plain_lines(headers, cells, right=right):
        click.echo(line)


def plain_lines(
    headers: Sequence[str], cells: list[list[str]], *, right: Sequence[str] = ()
) -> list[str]:
    """Columns two spaces apart, each as wide as its widest cell; the last one unpadded."""
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        parts = [
            cell.rjust(widths[i]) if headers[i] in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def progress(items: Iterable[T], label: str, *, total: int | None = None) -> Iterator[T]:
    """Yields items, drawing a progress bar on stderr when it is a terminal; `total` for an
    iterator that does not know its length."""
    err = Console(stderr=True)
    if total is None:
        total = len(items) if isinstance(items, Sequence) else 0
    if not err.is_terminal or total < 2:
        yield from items
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)
