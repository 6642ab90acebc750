"""The whole job: fetch -> plan -> (claim -> compose -> render -> send -> record)*.

The only module that knows every stage. ``send_digest`` takes the run lock, creates the edition
and its deliveries, then streams: a producer claims a batch, composes each reader's digest,
renders it (once per distinct digest, then cheaply per reader) and queues the bytes; the SMTP
pool's workers send them; each reply is recorded in small group commits. Memory stays flat
whatever the number of readers: at most one claimed batch plus the send queue is held.

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
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.compose import ArticleView, EditionView, compose, edition_selection
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
from digest.render import Renderer
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
                progress: Callable[[int | None], Progress] | None = None) -> RunReport:
    """Plan and send (or, with ``dry_run``, compose and render only); never raises for one
    reader's problem. Raises ``LockHeld`` when another run is active."""
    check_ready(settings)
    report = RunReport(frequency=options.frequency.value, dry_run=options.dry_run)
    started = time.monotonic()
    if options.dry_run:
        from digest.dry_run import dry_run

        dry_run(engine, settings, options.frequency, edition_date(settings, options), report)
        report.duration_s = time.monotonic() - started
        return report
    with RunLock(engine, settings):
        run_started = utcnow()
        with engine.begin() as conn:
            report.reclaimed = reclaim_orphans(conn)  # we hold the lock: they are orphans
        _plan(engine, settings, options, report)
        with engine.begin() as conn:
            due = due_count(conn, claim_timeout=settings.claim_timeout,
                            retry_deferred_before=run_started if options.retry_deferred
                            else None)
        tick = progress(due) if progress is not None else None
        run = _Run(engine, settings, report, tick,
                   run_started if options.retry_deferred else None)
        try:
            asyncio.run(run.main())
        except DigestError as exc:
            report.error = exc
        except asyncio.CancelledError:  # SIGTERM
            report.error = DigestError("Stopped by SIGTERM.", "the unsent deliveries are "
                                       "pending again; run `digest send` to finish")
    report.duration_s = time.monotonic() - started
    return report


def run_all(engine: Engine, settings: Settings, sessions: sessionmaker[Session],
            options: SendOptions = SendOptions(), *,
            progress: Callable[[int | None], Progress] | None = None) -> RunReport:
    """``digest run``: fetch every feed, then send. A failed feed does not stop the send."""
    check_ready(settings)
    from digest.feeds import fetch_all  # the fetch stage, imported only where it is used

    fetched = fetch_all(sessions, settings)
    report = send_digest(engine, settings, options, progress=progress)
    report.feeds_failed = fetched.failed
    report.articles_new = fetched.new
    return report


class _Run:
    """One streaming send: the state shared by the producer and the result callback."""

    def __init__(self, engine: Engine, settings: Settings, report: RunReport,
                 tick: Progress | None, retry_deferred_before: dt.datetime | None) -> None:
        self.engine, self.settings, self.report, self.tick = engine, settings, report, tick
        self.retry_before = retry_deferred_before
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self.renderer = Renderer(settings)
        self.recorder = Recorder(engine)
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.outstanding: dict[int, Claim] = {}  # claimed, no result yet
        self.queued: dict[int, tuple[dt.datetime, str, tuple[int, ...]]] = {}
        self.editions: dict[int, tuple[EditionView, list[ArticleView]]] = {}
        concurrency = settings.send_concurrency
        self.batch = settings.batch_size
        if settings.send_rate > 0:  # hold claims about a minute at most when rate-capped
            self.batch = max(min(self.batch, int(settings.send_rate * 60)), concurrency)
        self.pool = SmtpPool(settings)

    async def main(self) -> None:
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=2 * self.pool.concurrency)
        producer = asyncio.create_task(self._produce(queue))
        sender = asyncio.create_task(self.pool.run(queue, self._on_result))
        flusher = asyncio.create_task(self._flush_often())
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if current is not None:  # SIGTERM (systemd, kill) stops as cleanly as Ctrl-C
                loop.add_signal_handler(signal.SIGTERM, current.cancel)
        try:
            await asyncio.wait({producer, sender}, return_when=asyncio.FIRST_EXCEPTION)
            if producer.done() and producer.exception() is not None:
                self.pool.stop(producer.exception())  # type: ignore[arg-type]
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await sender
        finally:
            flusher.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)
            for pending in [producer, sender]:
                pending.cancel()
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

    async def _produce(self, queue: asyncio.Queue[Job | None]) -> None:
        while self.pool.error is None:
            with self.engine.begin() as conn:
                batch = claim(conn, self.worker, self.batch,
                              claim_timeout=self.settings.claim_timeout,
                              retry_deferred_before=self.retry_before)
                self.outstanding.update((c.delivery_id, c) for c in batch)
                jobs = self._prepare(conn, batch) if batch else []
            if not batch:
                break
            for job in jobs:
                await queue.put(job)
        for _ in range(self.pool.concurrency):
            await queue.put(None)

    def _edition(self, conn: Connection, edition_id: int
                 ) -> tuple[EditionView, list[ArticleView]]:
        found = self.editions.get(edition_id)
        if found is None:
            view = edition_view_for(conn, edition_id, self.settings.timezone)
            found = (view, load_candidates(conn, view, self.lookback))
            self.editions = {edition_id: found}  # batches come edition by edition
        return found

    def _prepare(self, conn: Connection, batch: list[Claim]) -> list[Job]:
        """Compose and render each claimed reader's message; skip or fail the ones that
        cannot have one."""
        views = {c.edition_id: self._edition(conn, c.edition_id)[0] for c in batch}
        since = min(v.cutoff for v in views.values()) - self.lookback
        readers, inactive = readers_for(conn, [c.subscriber_id for c in batch], since)
        jobs: list[Job] = []
        for c in batch:
            edition, candidates = self._edition(conn, c.edition_id)
            reader = readers.get(c.subscriber_id)
            if reader is None or c.subscriber_id in inactive:
                self._resolved(c).skipped(c, "the subscriber is no longer active")
                continue
            digest = compose(candidates, reader, edition, max_items=self.settings.max_items,
                             max_lookback=self.lookback)
            if digest is None:
                self._resolved(c).skipped(c, "nothing new for this reader")
                continue
            try:
                out = self.renderer.render(digest).message_for(reader)
            except InvalidInput as exc:
                self._resolved(c).failed(c, None, exc.message)
                continue
            self.queued[c.delivery_id] = (edition.cutoff, out.message_id,
                                          tuple(a.id for a in digest.articles))
            jobs.append(Job(c.delivery_id, out.sender, out.recipient, out.data))
        return jobs

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

