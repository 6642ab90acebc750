"""Output helpers shared by commands: aligned tables, CSV and JSON to stdout, and a progress
bar that only appears on a terminal (cron mail stays clean)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import click

__all__ = ["FORMAT_OPTION", "TEXT_OR_JSON", "echo_json", "finish_import", "print_rows", "progress"]

FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True, help="Output format; json and csv are for scripts.",
)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


class ImportOutcome(Protocol):
    invalid: int

    def summary(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


def finish_import(report: ImportOutcome, fmt: str, skipped: int | None = None) -> None:
    """Print an importer's report (one line, or JSON); exit 1 when some input was bad or
    skipped (``skipped``, default the invalid count), so a script can tell a clean import from
    one that left rows out."""
    if fmt == "json":
        echo_json(report.as_dict())
    else:
        click.echo(report.summary())
    if report.invalid if skipped is None else skipped:
        sys.exit(1)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def print_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str) -> int:
    """Print ``rows`` as a table, CSV or a JSON array; returns how many were printed.

    CSV and JSON stream row by row, so listing a large store does not hold it in memory; the table
    buffers to align columns.
    """
    count = 0
    if fmt == "json":
        out = sys.stdout
        out.write("[")
        for row in rows:
            out.write(("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False,
                                                                     default=str))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
            count += 1
        return count
    table = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return len(table)


@contextmanager
def progress(length: int | None, label: str) -> Iterator[Any]:
    """A click progress bar on a TTY (stderr), a silent stand-in elsewhere."""
    if sys.stderr.isatty():
        bar: Any
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield _Silent()


class _Silent:
    def update(self, n_steps: int, current_item: Any = None) -> None:
        pass


TEXT_OR_JSON = click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                            default="text", show_default=True,
                            help="json prints one object for scripts.")
