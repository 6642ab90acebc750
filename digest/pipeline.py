"""The whole job: fetch -> plan -> (claim -> compose -> render -> send -> record)*.

The only module that knows every stage. ``send_digest`` takes the run lock, creates the edition
and its deliveries, then streams: each SMTP worker, when its connection is free, pulls the next
message; a batch of deliveries is claimed when the previous one is used up, and each reader's
digest is composed (memoized for readers with the same inputs), rendered once per distinct
digest and filled in per reader just in time. Each reply is recorded in small group commits.
Memory stays flat whatever the number of readers: one claimed batch at most.

If the run must stop (5.7.x, unreachable server, Ctrl-C, SIGTERM) every claimed delivery that
was not attempted goes back to ``pending``, the results so far are committed, and the report
carries the error for the CLI to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.compose import ArticleView, EditionView, ReaderView, compose, edition_selection
from digest.deliveries import (
    Claim,
    claim,
    due_count,
    edition_view_for,
    ensure_edition,
    plan,
    readers_for,
    reclaim_orphans,
    set_edition_articles,
)
from digest.errors import ConfigError, DigestError, InvalidInput
from digest.ledger import Recorder
from digest.lock import RunLock
from digest.models import Frequency, utcnow
from digest.render import RenderedDigest, Renderer
from digest.report import RunReport
from digest.send import Job, Outcome, Reply, SmtpPool
from digest.settings import Settings
from digest.views import candidate_articles

__all__ = ["RunReport", "SendOptions", "check_ready", "load_candidates", "run_all", "send_digest"]

Progress = Callable[[int], None]
_FLUSH_EVERY = 0.25  # seconds: results reach the database at least this often


@dataclass(frozen=True)
class SendOptions:
    date: dt.date | None = None  # default: today in DIGEST_TIMEZONE
    frequency: Frequency = Frequency.DAILY
    dry_run: bool = False
    retry_deferred: bool = False


def check_ready(settings: Settings) -> None:
    """Refuse to send what cannot be sent lawfully or with working links."""
    settings.require_secret_key()
    if not settings.postal_address.strip():
        raise ConfigError(
            "DIGEST_POSTAL_ADDRESS is not set; every digest must show the sender's postal "
            "address.", 'set it in .env, e.g. DIGEST_POSTAL_ADDRESS="Str. Exemplu 1, '
            'Pitești 110000, România"')


def edition_date(settings: Settings, options: SendOptions) -> dt.date:
    return options.date or dt.datetime.now(settings.timezone).date()


def load_candidates(conn: Connection, edition: EditionView,
                    lookback: dt.timedelta) -> list[ArticleView]:
    """Every article any reader of ``edition`` could get (once per edition per run)."""
    with Session(bind=conn) as session:
        return candidate_articles(session, edition, lookback)


def _plan(engine: Engine, settings: Settings, options: SendOptions, report: RunReport) -> None:
    """Create the edition (fixing its archive selection) and its delivery rows."""
    day = edition_date(settings, options)
    with engine.begin() as conn:
        edition_id, created = ensure_edition(conn, options.frequency, day)
        if created:
            view = edition_view_for(conn, edition_id, settings.timezone)
            lookback = dt.timedelta(days=settings.max_lookback_days)
            chosen = edition_selection(load_candidates(conn, view, lookback), view,
                                       max_items=settings.max_items)
            set_edition_articles(conn, edition_id, [a.id for a in chosen])
        report.planned = plan(conn, edition_id, options.frequency)
        report.edition_id, report.edition_date = edition_id, day.isoformat()


def send_digest(engine: Engine, settings: Settings, options: SendOptions = SendOptions(), *,
                progress: Callable[[int | None], Progress] | None = None,
                before_send: Callable[[RunReport], None] | None = None) -> RunReport:
    """Plan and send (or, with ``dry_run``, compose and render only); never raises for one
    reader's problem. Raises ``LockHeld`` at once when another run is active; ``before_send``
    runs under the lock first (``digest run`` fetches there)."""
    check_ready(settings)
    report = RunReport(frequency=options.frequency.value, dry_run=options.dry_run)
    started = time.monotonic()
    if options.dry_run:  # no lock, no fetch, nothing written
        from digest.dry_run import dry_run

        dry_run(engine, settings, options.frequency, edition_date(settings, options), report)
        report.duration_s = time.monotonic() - started
        return report
    with RunLock(engine, settings):
        if before_send is not None:
            before_send(report)
        _send_locked(engine, settings, options, report, progress)
    report.duration_s = time.monotonic() - started
    return report


def _send_locked(engine: Engine, settings: Settings, options: SendOptions, report: RunReport,
                 progress: Callable[[int | None], Progress] | None) -> None:
    run_started = utcnow()
    retry_before = run_started if options.retry_deferred else None
    with engine.begin() as conn:
        report.reclaimed = reclaim_orphans(conn)  # we hold the lock: they are orphans
    _plan(engine, settings, options, report)
    with engine.begin() as conn:
        due = due_count(conn, claim_timeout=settings.claim_timeout,
                        retry_deferred_before=retry_before)
    tick = progress(due) if progress is not None else None
    run = _Run(engine, settings, report, tick, retry_before)
    try:
        asyncio.run(run.main())
    except DigestError as exc:
        report.error = exc
    except asyncio.CancelledError:  # SIGTERM
        report.error = DigestError("Stopped by SIGTERM.", "the unsent deliveries are "
                                   "pending again; run `digest send` to finish")


def run_all(engine: Engine, settings: Settings, sessions: sessionmaker[Session],
            options: SendOptions = SendOptions(), *,
            progress: Callable[[int | None], Progress] | None = None) -> RunReport:
    """``digest run``: fetch every feed, then send, all under the run lock (an overlapping
    run exits at once). A failed feed does not stop the send. A dry run fetches nothing."""

    def fetch(report: RunReport) -> None:
        from digest.feeds import fetch_all  # the fetch stage, imported only where it is used

        fetched = fetch_all(sessions, settings)
        report.feeds_failed = fetched.failed
        report.articles_new = fetched.new

    return send_digest(engine, settings, options, progress=progress, before_send=fetch)


class _Run:
    """One streaming send: workers pull jobs; each is claimed, composed and rendered just in
    time, and its result recorded."""

    def __init__(self, engine: Engine, settings: Settings, report: RunReport,
                 tick: Progress | None, retry_deferred_before: dt.datetime | None) -> None:
        self.engine, self.settings, self.report, self.tick = engine, settings, report, tick
        self.retry_before = retry_deferred_before
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self.renderer = Renderer(settings)
        self.recorder = Recorder(engine)
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.outstanding: dict[int, Claim] = {}  # claimed, no result yet
        self.claims: deque[Claim] = deque()  # claimed, not yet handed to a worker
        self.readers: dict[int, ReaderView] = {}  # of the current batch
        self.inactive: set[int] = set()
        self.exhausted = False
        self.cursor = 0  # the highest delivery id claimed: pending rows below are all taken
        self.queued: dict[int, tuple[dt.datetime, str, tuple[int, ...]]] = {}
        self.editions: dict[int, tuple[EditionView, list[ArticleView]]] = {}
        # Readers with the same topics, window and history get the same digest: compose and
        # look it up once. (A pure function of these inputs; bounded below.)
        self.memo: dict[tuple[object, ...], tuple[RenderedDigest, tuple[int, ...]] | None] = {}
        self.batch = settings.batch_size
        if settings.send_rate > 0:  # hold claims about a minute at most when rate-capped
            self.batch = max(min(self.batch, int(settings.send_rate * 60)),
                             settings.send_concurrency)
        self.pool = SmtpPool(settings)

    async def main(self) -> None:
        flusher = asyncio.create_task(self._flush_often())
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if current is not None:  # SIGTERM (systemd, kill) stops as cleanly as Ctrl-C
                loop.add_signal_handler(signal.SIGTERM, current.cancel)
        try:
            await self.pool.run(self._next_job, self._on_result)
        finally:
            flusher.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)
            self._finish()

    def _finish(self) -> None:
        """Give back what was claimed and never attempted; commit every result."""
        for waiting in self.outstanding.values():
            self.recorder.release(waiting)
        self.outstanding.clear()
        self.recorder.flush()
        self.report.take_counts(self.recorder.counts)
        self.report.reconnects = self.pool.reconnects

    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            self.recorder.flush()

    def _next_job(self) -> Job | None:
        """The next message to send, claiming a new batch when this one is used up."""
        while True:
            if not self.claims and not self._claim_batch():
                return None
            c = self.claims.popleft()
            job = self._prepare(c, self.readers.get(c.subscriber_id),
                                c.subscriber_id in self.inactive)
            if job is not None:
                return job

    def _claim_batch(self) -> bool:
        if self.exhausted:
            return False
        with self.engine.begin() as conn:
            batch = claim(conn, self.worker, self.batch,
                          claim_timeout=self.settings.claim_timeout,
                          retry_deferred_before=self.retry_before, after_id=self.cursor)
            if not batch:
                self.exhausted = True
                return False
            self.cursor = max(self.cursor, *(c.delivery_id for c in batch))
            self.outstanding.update((c.delivery_id, c) for c in batch)
            views = {c.edition_id: self._edition(conn, c.edition_id)[0] for c in batch}
            since = min(v.cutoff for v in views.values()) - self.lookback
            self.readers, self.inactive = readers_for(conn, [c.subscriber_id for c in batch],
                                                      since)
        self.claims.extend(batch)
        return True

    def _edition(self, conn: Connection, edition_id: int
                 ) -> tuple[EditionView, list[ArticleView]]:
        found = self.editions.get(edition_id)
        if found is None:
            view = edition_view_for(conn, edition_id, self.settings.timezone)
            found = (view, load_candidates(conn, view, self.lookback))
            self.editions[edition_id] = found
        return found

    def _digest_for(self, edition_id: int, reader: ReaderView
                    ) -> tuple[RenderedDigest, tuple[int, ...]] | None:
        key = (edition_id, reader.topics, reader.last_digest_at, reader.received_article_ids,
               reader.plain_text_only)
        if key in self.memo:
            return self.memo[key]
        edition, candidates = self.editions[edition_id]
        digest = compose(candidates, reader, edition, max_items=self.settings.max_items,
                         max_lookback=self.lookback)
        found = None if digest is None else (self.renderer.render(digest),
                                             tuple(a.id for a in digest.articles))
        if len(self.memo) >= 4096:
            self.memo.clear()
        self.memo[key] = found
        return found

    def _prepare(self, c: Claim, reader: ReaderView | None, inactive: bool) -> Job | None:
        """Compose and render one reader's message, or record why there is none."""
        if reader is None or inactive:
            self._resolved(c).skipped(c, "the subscriber is no longer active")
            return None
        found = self._digest_for(c.edition_id, reader)
        if found is None:
            self._resolved(c).skipped(c, "nothing new for this reader")
            return None
        rendered, article_ids = found
        try:
            out = rendered.message_for(reader)
        except InvalidInput as exc:
            self._resolved(c).failed(c, None, exc.message)
            return None
        self.queued[c.delivery_id] = (self.editions[c.edition_id][0].cutoff, out.message_id,
                                      article_ids)
        return Job(c.delivery_id, out.sender, out.recipient, out.data)

    def _resolved(self, c: Claim) -> Recorder:
        del self.outstanding[c.delivery_id]
        if self.tick is not None:
            self.tick(1)
        return self.recorder

    def _on_result(self, job: Job, reply: Reply) -> None:
        c = self.outstanding[job.key]
        cutoff, message_id, article_ids = self.queued.pop(job.key)
        recorder = self._resolved(c)
        if reply.outcome is Outcome.SENT:
            recorder.sent(c, cutoff, message_id, reply.code, reply.line, article_ids)
        elif reply.outcome is Outcome.DEFERRED:
            recorder.deferred(c, reply.code, reply.line)
        elif reply.outcome is Outcome.ABORT:
            recorder.release(c, reply.code, reply.line)
        else:
            recorder.failed(c, reply.code, reply.line,
                            bounce=reply.outcome is Outcome.FAILED_ADDRESS)

