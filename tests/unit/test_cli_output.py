"""The operator command's tables: rich on a terminal, plain aligned columns when piped."""

from __future__ import annotations

import io

from rich.console import Console

from services.cli.output import plain_lines, progress, table


def test_plain_columns_align_and_split_back_into_the_cells() -> None:
    lines = plain_lines(
        ["ADDRESS", "BYTES", "STATE"],
        [["a@example.org", "7", "active"], ["much.longer@example.org", "1234", "expired"]],
        right=["BYTES"],
    )
    assert lines == [
        "ADDRESS                  BYTES  STATE",
        "a@example.org                7  active",
        "much.longer@example.org   1234  expired",
    ]
    assert [line.split() for line in lines[1:]] == [
        ["a@example.org", "7", "active"],
        ["much.longer@example.org", "1234", "expired"],
    ]


def test_empty_cells_show_a_dash_so_columns_stay_countable(capsys: object) -> None:
    table(["A", "B", "C"], [("x", None, "z"), ("", "y", 3)])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert [line.split() for line in out.splitlines()] == [["A", "B", "C"], ["x", "-", "z"],
                                                          ["-", "y", "3"]]  # fmt: skip


def test_a_terminal_gets_a_rich_table() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    table(["TENANT", "DOMAINS"], [("acme", "acme.example")], console=console)
    text = buffer.getvalue()
    assert "TENANT" in text and "acme.example" in text
    assert "─" in text  # the rule under the header: not the plain form


def test_progress_yields_every_item_when_not_on_a_terminal() -> None:
    assert list(progress([1, 2, 3], "working")) == [1, 2, 3]
