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
from zoneinfo import ZoneInfo

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
        click.option("--at", "at", default=None, metavar="ISO8601",
                     help="Run as if the clock read this instant, e.g. 2026-12-07T05:00:00Z "
                          "(no offset: DIGEST_TIMEZONE): who is due, the edition dates, and "
                          "which articles exist."),
        click.option("--date", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="A manual edition of this date for every reader of --frequency, "
                          "whatever their hour (default: the schedule)."),
        click.option("--frequency", type=click.Choice([f.value for f in Frequency]),
                     default=None, help="A manual edition of this frequency, dated --date or "
                                        "today in DIGEST_TIMEZONE (default: the schedule)."),
        click.option("--dry-run", is_flag=True,
                     help="Compose and render every message; send and record nothing."),
        click.option("--retry-deferred", is_flag=True,
                     help="Retry deferred deliveries now, whatever their backoff."),
        _FORMAT,
    ]):
        f = option(f)
    return f


def _options(app: App, at: str | None, date: dt.datetime | None, frequency: str | None,
             dry_run: bool, retry_deferred: bool) -> SendOptions:
    """No --date and no --frequency: the schedule (every reader due now); else a manual
    edition, as before the schedule existed."""
    return SendOptions(date=date.date() if date else None,
                       frequency=Frequency(frequency or Frequency.DAILY),
                       dry_run=dry_run, retry_deferred=retry_deferred,
                       schedule=date is None and frequency is None,
                       at=_instant(at, app.settings.timezone) if at else None)


def _instant(raw: str, tz: ZoneInfo) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"--at {raw!r} is not an ISO 8601 instant.",
                           "write it like 2026-12-07T05:00:00Z or "
                           "2026-12-07T07:00:00+02:00") from None
    return (when if when.tzinfo else when.replace(tzinfo=tz)).astimezone(dt.UTC)


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
        for url, why in report.failed_feeds:  # as `digest fetch` shows them
            click.echo(f"FAIL {url}  {why}", err=True)
        click.echo(report.summary())
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
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
def send(app: App, at: str | None, date: dt.datetime | None, frequency: str | None,
         dry_run: bool, retry_deferred: bool, fmt: str, join: bool) -> None:
    """Plan and send every reader who is due now, each at their own hour and in their own
    timezone (DIGEST_SEND_HOUR, DIGEST_WEEKLY_DAY); or, with --date/--frequency, a manual
    edition to every reader of that frequency whatever their hour.

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
      digest send --at 2026-12-07T05:00:00Z
      digest send --frequency weekly --date 2026-11-30 --format json
      digest send --retry-deferred
      digest send --join        # on a second machine, same DIGEST_DATABASE_URL
    """
    app.sessions  # noqa: B018 -- refuses early, with a hint, on an uninitialised database
    if join:
        _check_join(at, date, frequency, dry_run)
    with _bar() as bar:
        if join:
            report = join_send(app.engine, app.settings,
                               _options(app, None, None, None, False, retry_deferred),
                               progress=bar)
        else:
            report = send_digest(app.engine, app.settings,
                                 _options(app, at, date, frequency, dry_run, retry_deferred),
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


def _check_join(at: str | None, date: dt.datetime | None, frequency: str | None,
                dry_run: bool) -> None:
    """A joiner sends whatever is due, of any edition: it has no date, and sends for real."""
    if at is not None or date is not None or frequency is not None or dry_run:
        raise InvalidInput(
            "--join cannot be combined with --at, --date, --frequency or --dry-run.",
            "a joiner sends the due deliveries of editions the planner created; give those "
            "options to the planning `digest send` instead")


@click.command()
@_send_options
@pass_app
def run(app: App, at: str | None, date: dt.datetime | None, frequency: str | None,
        dry_run: bool, retry_deferred: bool, fmt: str) -> None:
    """Fetch every feed, then send every reader who is due now: the cron entry point. Run it
    every hour; each reader gets their digest at their own local hour, once a day (or week).

    A failed feed is named with its reason (FAIL lines on stderr) and does not stop the send.

    \b
    Examples (crontab, every hour; a catch-up by hand):
      0 * * * *  cd /srv/digest && digest run
      digest run --at 2026-12-07T05:00:00Z
    """
    with _bar() as bar:
        report = run_all(app.engine, app.settings, app.sessions,
                         _options(app, at, date, frequency, dry_run, retry_deferred),
                         progress=bar)
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


