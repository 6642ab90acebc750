"""``digest send``, ``digest run`` (cron) and ``digest status``.

``send`` and ``run`` end with one summary line (or one JSON object with ``--format json``) and
exit 0 when everything is done, 1 when something failed or was deferred (or a feed failed), 2 on
a usage or configuration error and 75 when another run holds the lock.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click

from digest.cli.context import App, pass_app
from digest.cli.output import echo_json, print_rows, progress
from digest.config.errors import DigestError, InvalidInput
from digest.delivery.status import status as delivery_status
from digest.run.commands import SendOptions, join_send, run_all, send_digest
from digest.run.report import RunReport
from digest.store.models import DeliveryState, Frequency

__all__ = ["run", "send", "status"]

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="json prints one object for scripts.")


def _send_options(f: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--date", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="Edition date (default: today in DIGEST_TIMEZONE)."),
        click.option("--frequency", type=click.Choice([f.value for f in Frequency]),
                     default="daily", show_default=True),
        click.option("--dry-run", is_flag=True,
                     help="Compose and render every message; send and record nothing."),
        click.option("--retry-deferred", is_flag=True,
                     help="Retry deferred deliveries now, whatever their backoff."),
        _FORMAT,
    ]):
        f = option(f)
    return f


def _options(date: dt.datetime | None, frequency: str, dry_run: bool,
             retry_deferred: bool) -> SendOptions:
    return SendOptions(date=date.date() if date else None, frequency=Frequency(frequency),
                       dry_run=dry_run, retry_deferred=retry_deferred)


@contextmanager
def _bar() -> Iterator[Callable[[int | None], Callable[[int], None]]]:
    """A progress-bar factory for the pipeline, which knows the total only once it has
    planned (a bar on a terminal only; cron mail stays clean)."""
    with ExitStack() as stack:

        def start(total: int | None) -> Callable[[int], None]:
            bar = stack.enter_context(progress(total, "Sending"))
            return bar.update  # type: ignore[no-any-return]

        yield start


def _finish(report: RunReport, fmt: str, app: App | None = None) -> None:
    if fmt == "json":
        payload = report.as_dict()
        if app is not None and not report.dry_run:
            payload["feedback"], payload["feedback_previous"] = _last_rates(app)
        echo_json(payload)
    else:
        click.echo(report.summary())
    if report.error is not None:
        click.echo(f"Error: {report.error.message}", err=True)
        if report.error.hint:
            click.echo(f"Hint: {report.error.hint}", err=True)
    click.get_current_context().exit(report.exit_code)


@click.command()
@_send_options
@click.option("--join", is_flag=True,
              help="PostgreSQL only: an extra sender next to a running `digest send`. "
                   "Plans nothing and takes no lock; sends due deliveries of existing "
                   "editions (several machines can share one big edition).")
@pass_app
def send(app: App, date: dt.datetime | None, frequency: str, dry_run: bool,
         retry_deferred: bool, fmt: str, join: bool) -> None:
    """Plan today's edition and send it to every due reader.

    Running it again sends only what is still due: new readers, deferred deliveries whose retry
    time has come, and deliveries a crashed run left behind.

    With --join (PostgreSQL), more processes, on this machine or others, help a running
    `digest send` with a big edition: each claims batches of due deliveries that nobody else
    holds, so no reader gets two copies. Start them once the planner has planned; they exit
    when nothing is left to claim. A joiner that dies leaves its claims to the others after
    DIGEST_CLAIM_TIMEOUT seconds (or to the next `digest send` at once).

    \b
    Examples:
      digest send
      digest send --dry-run
      digest send --frequency weekly --date 2026-11-30 --format json
      digest send --retry-deferred
      digest send --join        # on a second machine, same DIGEST_DATABASE_URL
    """
    app.sessions  # noqa: B018 -- refuses early, with a hint, on an uninitialised database
    if join:
        _check_join(date, dry_run)
    with _bar() as bar:
        if join:
            report = join_send(app.engine, app.settings,
                               _options(None, frequency, False, retry_deferred), progress=bar)
        else:
            report = send_digest(app.engine, app.settings,
                                 _options(date, frequency, dry_run, retry_deferred),
                                 progress=bar)
    _finish(report, fmt, app)


def _last_rates(app: App) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Bounce and complaint rates of the newest edition that sent anything, and the one before
    (whose reports have had time to come in)."""
    from digest.feedback.rates import last_sent_rates

    try:
        with app.sessions() as session:
            rates = last_sent_rates(session.connection(), 2)
    except DigestError:  # no database to read (the run's own error says why)
        return None, None
    return (rates[0] if rates else None, rates[1] if len(rates) > 1 else None)


def _check_join(date: dt.datetime | None, dry_run: bool) -> None:
    """A joiner sends whatever is due, of any edition: it has no date, and sends for real."""
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("frequency") is not click.core.ParameterSource.DEFAULT
    if date is not None or explicit or dry_run:
        raise InvalidInput(
            "--join cannot be combined with --date, --frequency or --dry-run.",
            "a joiner sends the due deliveries of editions the planner created; give those "
            "options to the planning `digest send` instead")


@click.command()
@_send_options
@pass_app
def run(app: App, date: dt.datetime | None, frequency: str, dry_run: bool,
        retry_deferred: bool, fmt: str) -> None:
    """Fetch every feed, then send: the cron entry point.

    Exit codes: 0 all done; 1 something failed or was deferred, or a feed failed; 2 usage or
    configuration error; 75 another run holds the lock.

    \b
    Example (crontab, every day at 06:30):
      30 6 * * *  cd /srv/digest && digest run
    """
    with _bar() as bar:
        report = run_all(app.engine, app.settings, app.sessions,
                         _options(date, frequency, dry_run, retry_deferred), progress=bar)
    _finish(report, fmt, app)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json is for scripts.")
@click.option("--limit", default=30, show_default=True, help="How many editions, newest first.")
@pass_app
def status(app: App, fmt: str, limit: int) -> None:
    """Editions with their delivery counts by state.

    \b
    Examples:
      digest status
      digest status --format json
    """
    from digest.feedback.rates import edition_rates

    with app.sessions() as session:
        editions = delivery_status(session.connection(), limit)
        rates = edition_rates(session.connection(), [e["id"] for e in editions])
    for e in editions:
        e["feedback"] = rates[e["id"]]
    if fmt == "json":
        echo_json({"editions": editions})
        return
    rows = [{"id": e["id"], "frequency": e["frequency"], "date": e["date"], **e["counts"],
             "bounces": f"{e['feedback']['bounce_rate'] * 100:.2f}%",
             "complaints": f"{e['feedback']['complaint_rate'] * 100:.2f}%"} for e in editions]
    print_rows(rows, ["id", "frequency", "date", *[s.value for s in DeliveryState], "bounces",
                      "complaints"], "table")
    _warn_complaints(editions)


def _warn_complaints(editions: list[dict[str, Any]]) -> None:
    """A line per edition past Gmail's and Yahoo's complaint limits (red past 0.3 % on a TTY)."""
    for e in editions:
        level, rate = e["feedback"]["complaint_level"], e["feedback"]["complaint_rate"]
        if level == "ok":
            continue
        limit = "0.3 %: Gmail and Yahoo block" if level == "alarm" else "0.1 %"
        text = (f"Warning: edition {e['id']} ({e['date']}) has a complaint rate of "
                f"{rate * 100:.2f} %, above {limit}")
        click.secho(text, err=True, fg="red" if level == "alarm" else "yellow",
                    color=sys.stderr.isatty())


