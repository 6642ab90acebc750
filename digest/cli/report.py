"""``digest report --html FILE``: a page with charts of the last editions."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.context import App, pass_app

__all__ = ["report"]


@click.command("report")
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page (inline SVG charts, no JavaScript) here.")
@click.option("--limit", default=30, show_default=True, help="How many editions, newest last.")
@pass_app
def report(app: App, html_file: Path, limit: int) -> None:
    """Charts of the last editions: sent, deferred, failed, bounce and complaint rates.

    \b
    Example:
      digest report --html report.html && xdg-open report.html
    """
    from digest.delivery.status import status as delivery_status
    from digest.feedback.html_report import render_report
    from digest.feedback.rates import edition_rates

    with app.sessions() as session:
        conn = session.connection()
        editions = delivery_status(conn, limit)
        rates = edition_rates(conn, [e["id"] for e in editions])
    rows = [{**e, **rates[e["id"]]} for e in reversed(editions)]
    html_file.write_text(render_report(app.settings.site_name, rows), encoding="utf-8")
    click.echo(f"Wrote {html_file} ({len(rows)} editions)")
