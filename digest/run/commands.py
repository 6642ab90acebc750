"""The whole job: fetch -> plan -> (claim -> compose -> render -> send -> record)*.

The only module that knows every stage. ``send_digest`` takes the run lock, creates the edition
and its deliveries, then streams them out (``run.sender``). ``join_send`` is an extra sender
for PostgreSQL (``digest send --join``): no lock, no planning, it claims due deliveries of the
editions that exist, next to the planner and to any number of other joiners, each claim taken
with ``FOR UPDATE SKIP LOCKED`` so that no delivery is handed to two senders.

If the run must stop (5.7.x, unreachable server, Ctrl-C, SIGTERM) every claimed delivery that
was not attempted goes back to ``pending``, the results so far are committed, and the report
carries the error for the CLI to show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.fetch import fetch_all
from digest.compose import edition_cutoff, edition_selection
from digest.config.errors import ConfigError, DigestError
from digest.config.settings import Settings
from digest.delivery.claims import due_count, reclaim_orphans
from digest.delivery.plan import (
    ensure_edition,
    find_edition,
    groups_with_work,
    plan_groups,
    set_edition_articles,
)
from digest.delivery.presence import Presence
from digest.delivery.run_lock import RunLock, lock_path
from digest.delivery.snapshots import edition_view_for, load_candidates
from digest.delivery.status import unfinished
from digest.render.samples import preflight
from digest.run.dry_run import dry_run
from digest.run.interpreter import tuned_for_sending
from digest.run.journal import Journal, journal_folder, reconcile
from digest.run.options import SendOptions, groups_for
from digest.run.report import RunReport
from digest.run.sender import Progress, Sender
from digest.store.faults import database_fault
from digest.store.models import Frequency, utcnow

__all__ = ["RunReport", "SendOptions", "check_ready", "join_send", "plan_editions", "run_all",
           "send_digest"]

TODAY = SendOptions()  # the default: today's daily edition for every daily reader


def check_ready(settings: Settings) -> None:
    """Refuse to send what cannot be sent lawfully or with working links."""
    settings.require_secret_key()
    if not settings.postal_address.strip():
        raise ConfigError(
            "DIGEST_POSTAL_ADDRESS is not set; every digest must show the sender's postal "
            "address.", 'set it in .env, e.g. DIGEST_POSTAL_ADDRESS="Str. Exemplu 1, '
            'Pitești 110000, România"')
    # The same checklist as `digest check`, on one sample per language rendered with the
    # templates this send will use: an override must not silently drop the unsubscribe link.
    preflight(settings)


def plan_editions(engine: Engine, settings: Settings, options: SendOptions,
                  report: RunReport) -> None:
    """Create the editions someone is due for (fixing each one's archive selection) and their
    deliveries: one INSERT ... SELECT plans them all. An edition is created only when someone
    is due for it (one query over the groups still without one: most hours, none), so an hour
    with nobody due leaves no empty edition behind."""
    at = options.clock
    with engine.begin() as conn:
        groups = groups_for(conn, settings, options)
        found = {key: find_edition(conn, *key)
                 for key in dict.fromkeys((g.frequency, g.date) for g in groups)}
        busy = [g for g in groups if found[g.frequency, g.date] is not None]
        new = [g for g in groups if found[g.frequency, g.date] is None]
        if new:
            busy += [new[i] for i in groups_with_work(conn, new, settings.send_hour,
                                                      [None] * len(new))]
        editions: dict[tuple[Frequency, dt.date], int] = {}
        for key in dict.fromkeys((g.frequency, g.date) for g in busy):
            editions[key] = found[key] or _new_edition(conn, settings, key, at)
        # Each delivery's own cutoff: the run's instant (a manual edition: capped at the end
        # of its date), never later than --at, so an article published after it waits.
        cutoff = (at if options.schedule
                  else edition_cutoff(groups[0].date, settings.timezone, at))
        report.planned = plan_groups(
            conn, busy, [editions[g.frequency, g.date] for g in busy],
            default_hour=settings.send_hour, cutoff=cutoff)
        if not options.schedule:  # a manual edition is reported even when nothing was new
            key = (groups[0].frequency, groups[0].date)
            editions.setdefault(key, found[key] or _new_edition(conn, settings, key, at))
        report.set_editions([(i, f.value, d.isoformat()) for (f, d), i in editions.items()])


def _new_edition(conn: Connection, settings: Settings, key: tuple[Frequency, dt.date],
                 at: dt.datetime) -> int:
    """Create the edition (or find the one another planner just made); fix its archive."""
    edition_id, created = ensure_edition(conn, *key, now=at)
    if created:
        view = edition_view_for(conn, edition_id, settings.timezone)
        lookback = dt.timedelta(days=settings.max_lookback_days)
        chosen = edition_selection(load_candidates(conn, view, lookback), view,
                                   max_items=settings.max_items)
        set_edition_articles(conn, edition_id, [a.id for a in chosen])
    return edition_id


def send_digest(engine: Engine, settings: Settings, options: SendOptions = TODAY, *,
                progress: Callable[[int | None], Progress] | None = None,
                before_send: Callable[[RunReport], None] | None = None) -> RunReport:
    """Plan and send (or, with ``dry_run``, compose and render only); never raises for one
    reader's problem. Raises ``LockHeld`` at once when another run is active; ``before_send``
    runs under the lock first (``digest run`` fetches there)."""
    check_ready(settings)
    report = RunReport(frequency="schedule" if options.schedule else options.frequency.value,
                       dry_run=options.dry_run,
                       at=options.at.astimezone(dt.UTC).isoformat() if options.at else None)
    started = time.monotonic()
    if options.dry_run:  # no lock, no fetch, nothing written
        dry_run(engine, settings, options, report)
        report.duration_s = time.monotonic() - started
        return report
    with RunLock(engine, settings) as lock:
        if before_send is not None:
            before_send(report)
        _send_locked(engine, settings, options, report, progress, lock.check)
    report.duration_s = time.monotonic() - started
    return report


def _send_locked(engine: Engine, settings: Settings, options: SendOptions, report: RunReport,
                 progress: Callable[[int | None], Progress] | None,
                 lock_check: Callable[[], None]) -> None:
    # First the replies a crashed sender journaled but never committed (run.journal), so
    # that what reclaim_orphans gives back below is only what was truly in flight.
    report.reconciled = reconcile(engine, _journals(engine, settings))
    with engine.begin() as conn:
        # Rows left `sending` by senders that are gone (all of them on SQLite; on PostgreSQL
        # not those of a live `--join` process): see reclaim_orphans.
        report.reclaimed = reclaim_orphans(conn)
    plan_editions(engine, settings, options, report)
    _stream(engine, settings, options, report, progress, lock_check)
    _count_left(engine, report)


def _count_left(engine: Engine, report: RunReport) -> None:
    """What the run's editions (all of them: an hourly run may have several) still have to
    do, from the ledger: the exit code and the summary say so even when this run attempted
    none of it (deferred rows whose retry is not due yet)."""
    if report.edition_id is None:
        return
    try:
        with engine.begin() as conn:
            report.left = unfinished(conn, [e["id"] for e in report.editions
                                            if e["id"] is not None])  # edition_id among them
    except DBAPIError:
        if report.error is None:  # the database went away while the run was stopping: keep
            raise                 # the error that stopped it, which says so


def join_send(engine: Engine, settings: Settings, options: SendOptions = TODAY, *,
              progress: Callable[[int | None], Progress] | None = None) -> RunReport:
    """``digest send --join``: send due deliveries of existing editions next to a running
    ``digest send`` (PostgreSQL only). Takes no lock, plans nothing, reclaims nothing at once:
    another sender's claims come back only once stale (``DIGEST_CLAIM_TIMEOUT``)."""
    check_ready(settings)
    if engine.dialect.name != "postgresql":
        raise ConfigError(
            "`digest send --join` needs PostgreSQL: SQLite has a single writer, so extra "
            "senders would only wait on each other.",
            "run plain `digest send` (one at a time); to share a big edition between "
            "machines, use DIGEST_DATABASE_URL=postgresql+psycopg://...")
    if options.dry_run:
        raise ConfigError("`digest send --join` cannot be a dry run.",
                          "use `digest send --dry-run` to compose and render without sending")
    report = RunReport(frequency=options.frequency.value, joined=True)
    started = time.monotonic()
    report.reconciled = reconcile(engine, _journals(engine, settings))
    _stream(engine, settings, options, report, progress)
    report.duration_s = time.monotonic() - started
    return report


def _journals(engine: Engine, settings: Settings) -> Path:
    """This machine's reply journals: next to the run lock file (see run.journal)."""
    return journal_folder(lock_path(engine, settings))


def _stream(engine: Engine, settings: Settings, options: SendOptions, report: RunReport,
            progress: Callable[[int | None], Progress] | None,
            lock_check: Callable[[], None] | None = None) -> None:
    """Send what is due. A database failure during the send (disk full, server restarted,
    connection or lock terminated) ends it with ``report.error`` set, never a traceback: the
    results received are written if the database lets us, the rest is taken back next run."""
    retry_before = utcnow() if options.retry_deferred else None
    with engine.begin() as conn:
        due = due_count(conn, claim_timeout=settings.claim_timeout,
                        retry_deferred_before=retry_before)
    tick = progress(due) if progress is not None else None
    # Presence before the first claim, released after the last result is written.
    presence = Presence(engine)
    with presence as worker:
        # Before each claim and every second: do we still hold our locks? (A sender whose
        # lock connection was terminated must stop claiming at once.)
        guards = [check for check in (lock_check, presence.check) if check is not None]
        journal = Journal(_journals(engine, settings), worker)  # closed by the Sender
        run = Sender(engine, settings, report, tick, retry_before, worker, guards, journal)
        try:
            with tuned_for_sending():
                asyncio.run(run.main())
        except DigestError as exc:
            report.error = exc
        except SQLAlchemyError as exc:
            report.error = database_fault(exc)
        except asyncio.CancelledError:  # SIGTERM
            report.error = DigestError("Stopped by SIGTERM.", "the unsent deliveries are "
                                       "pending again; run `digest send` to finish")


def run_all(engine: Engine, settings: Settings, sessions: sessionmaker[Session],
            options: SendOptions = TODAY, *,
            progress: Callable[[int | None], Progress] | None = None) -> RunReport:
    """``digest run``: fetch every feed, then send, all under the run lock (an overlapping
    run exits at once). A failed feed does not stop the send. A dry run fetches nothing."""

    def fetch(report: RunReport) -> None:
        fetched = fetch_all(sessions, settings)
        report.failed_feeds = [(r.url, r.error or "failed") for r in fetched.results
                               if not r.ok]
        report.articles_new = fetched.new

    return send_digest(engine, settings, options, progress=progress, before_send=fetch)


