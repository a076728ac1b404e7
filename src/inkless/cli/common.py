"""What every command shares: the --data and --json options, opening the node, printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inkless import timefmt
from inkless.config import load_settings

if TYPE_CHECKING:  # the node pulls in SQLAlchemy, pyHanko, cryptography: only when a command runs
    from inkless.app import Node

DataOption = Annotated[
    Path | None,
    typer.Option("--data", "-d", envvar="INKLESS_DATA", help="The node's data folder (default: $INKLESS_DATA)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def open_node(data: Path | None) -> Iterator[Node]:
    """The node in ``data``, closed when the command ends."""
    from inkless.app import build_node

    node = build_node(load_settings(data))
    try:
        yield node
    finally:
        node.close()


def shown_time(node: Node, value: datetime | None, seconds: bool = False) -> str:
    """A time in a human CLI table: the node's zone with its abbreviation (``2026-12-03 17:05 JST``).

    ``--json`` output keeps ISO 8601 UTC: programs read that.
    """
    return timefmt.format_datetime(value, "en", node.settings.tz, seconds=seconds) if value else ""


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table (East Asian wide characters count as two columns)."""
    import unicodedata

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (w - width(v)) for v, w in zip(values, widths, strict=True)).rstrip()

    typer.echo(line(list(headers)))
    for row in cells:
        typer.echo(line(row))
    if not cells:
        typer.echo("(none)")


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def stderr(message: str) -> None:
    print(message, file=sys.stderr)
