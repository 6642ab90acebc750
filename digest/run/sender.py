"""One streaming send: claim -> compose -> render -> send -> record, just in time.

Each SMTP worker, when its connection is free, pulls the next message. Deliveries are claimed
a batch at a time, one batch ahead, and each reader's digest is composed (memoized for readers
with the same inputs), rendered once per distinct digest and filled in per reader shortly
before it goes out (``PREPARE_AHEAD`` at a time). Each reply is journaled at once
(``run.journal``: the crash bound) and written to the ledger in group commits. The database
work (claims, reader loads, result writes, heartbeats) runs on two threads of its own
(``run.db_thread``), so the event loop never waits on the database. Memory stays flat whatever
the number of readers: two claimed batches at most.

Used by the planner (``digest send``/``run``, under the run lock) and by ``digest send --join``
alike; the claimant name ``worker`` is unique per process (``delivery.presence``), and the rows
it holds are refreshed (``deliveries.heartbeat``) so that no other sender takes them as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from digest.compose import ArticleView, EditionView, ReaderView, compose
from digest.config.errors import InvalidInput
from digest.config.settings import Settings
from digest.delivery.claims import Claim
from digest.delivery.results import Recorder
from digest.render.message import RenderedDigest, Renderer
from digest.run.claim_feeder import ClaimedBatch, ClaimFeeder, EditionKey
from digest.run.db_thread import DbThread
from digest.run.journal import Journal, record
from digest.run.result_writer import ResultWriter
from digest.store.faults import FaultKind, fault_kind
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Reply, reply_hint

if TYPE_CHECKING:
    from digest.run.report import RunReport

__all__ = ["PREPARE_AHEAD", "STATUS_EVERY", "Progress", "Sender", "heartbeat_every"]

Progress = Callable[[int], None]
_FLUSH_EVERY = 0.25  # seconds: results reach the database at least this often
# Seconds between two reads of the queued readers' status: a reader who unsubscribes during
# the send (one click, answered 200) is mailed at most this long afterwards -- plus the one
# message that may be in flight to them. One query per interval, not one per message.
STATUS_EVERY = 0.1
_REWRITE_AFTER = (0.2, 1.0, 2.0, 4.0)  # seconds: the last results after a lost connection
GUARD_EVERY = 0.5  # seconds between two checks that the run's locks are still held
# Messages made at a time (3 MB of 25 KB digests): 8-10 % less CPU per message than one at
# a time (bench/send.py), each still checked right before it goes out (``_wanted``).
PREPARE_AHEAD = 128


def heartbeat_every(claim_timeout: float) -> float:
    """How often a sender refreshes its claims: several times per claim timeout, at least
    once a minute, so a live sender's claims never look stale to another process."""
    return max(min(claim_timeout / 4, 60.0), 0.05)


class Sender:
    """One streaming send: workers pull jobs; each is claimed, composed and rendered just in
    time, and its result recorded."""

    def __init__(self, engine: Engine, settings: Settings, report: RunReport,
                 tick: Progress | None, retry_deferred_before: dt.datetime | None,
                 worker: str, guards: Sequence[Callable[[], None]], journal: Journal) -> None:
        self.settings, self.report, self.tick = settings, report, tick
        self.renderer = Renderer(settings)
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.pool = SmtpPool(settings)
        batch = settings.batch_size
        if settings.send_rate > 0:  # rate-capped: hold claims (two batches) a minute at most
            batch = max(min(batch, int(settings.send_rate * 30)), settings.send_concurrency)
        self.threads = DbThread.for_sending(engine)
        self.guards = tuple(guards)  # raise if this sender lost its locks (run.commands)
        self.feeder = ClaimFeeder(self.threads[0], settings, worker, batch,
                                  retry_deferred_before, self._check_guards)
        self.journal = journal
        self.ledger = ResultWriter(self.threads[1], worker, self.pool.stop, journal)
        self.recorder = self.ledger.recorder
        self.outstanding: dict[int, Claim] = {}  # claimed, no result yet
        self.claims: deque[Claim] = deque()  # claimed, not yet handed to a worker
        self.ready: deque[Job] = deque()  # made, not yet handed to a worker
        self.readers: dict[int, ReaderView] = {}  # of the current batch
        self.inactive: set[int] = set()
        self.refill = asyncio.Lock()  # one worker waits for the next batch; the others queue
        self.queued: dict[int, tuple[dt.datetime, str, tuple[int, ...]]] = {}
        self.editions: dict[EditionKey, tuple[EditionView, list[ArticleView]]] = {}
        # Readers with the same topics, window and history get the same digest: compose and
        # look it up once. (A pure function of these inputs; bounded below.)
        self.memo: dict[tuple[object, ...], tuple[RenderedDigest, tuple[int, ...]] | None] = {}

    async def main(self) -> None:
        flusher = asyncio.create_task(self._flush_often())
        watcher = asyncio.create_task(self._watch_status())
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if current is not None:  # SIGTERM (systemd, kill) stops as cleanly as Ctrl-C
                loop.add_signal_handler(signal.SIGTERM, current.cancel)
        try:
            await self.pool.run(self._next_job, self._on_result, still_wanted=self._wanted)
        finally:
            flusher.cancel()
            watcher.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)
            self._finish()

    def _finish(self) -> None:
        """Give back what was claimed and never attempted; commit every result. (Blocking
        waits on the two threads: the sending is over.) A claim that failed under way leaves
        its rows ``sending``: the next run takes them back."""
        claim_error: BaseException | None = None
        try:
            leftovers = self.feeder.close()
        except Exception as exc:  # reported below, unless the run has an error already
            leftovers, claim_error = [], exc
        for leftover in leftovers:
            self.outstanding.update((c.delivery_id, c) for c in leftover.claims)
        for waiting in self.outstanding.values():
            self.recorder.release(waiting)
        self.outstanding.clear()
        self.report.take_counts(self.recorder.counts)
        self.report.reconnects = self.pool.reconnects
        try:
            written = False
            try:
                self._write_the_rest()
                written = True
            finally:
                # Every reply in the ledger: the journal goes. Else it stays for the next start.
                self.journal.close(remove=written)
        finally:
            for thread in dict.fromkeys(self.threads):  # once each, even when shared
                thread.close()
        if claim_error is not None and self.pool.error is None:
            raise claim_error

    def _write_the_rest(self) -> None:
        """The last results: tried again for a while if the connection was lost (a server
        restart takes seconds; a terminated connection is replaced at once)."""
        for delay in (*_REWRITE_AFTER, None):
            try:
                self.ledger.close()
                return
            except SQLAlchemyError as exc:
                if delay is None or fault_kind(exc) is not FaultKind.CONNECTION_LOST:
                    raise
            time.sleep(delay)

    async def _flush_often(self) -> None:
        every = heartbeat_every(self.settings.claim_timeout)
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(min(_FLUSH_EVERY, every))
            self.ledger.flush_soon()
            if time.monotonic() - last_beat >= every:
                last_beat = time.monotonic()
                self.ledger.beat()

    def _check_guards(self) -> None:
        for check in self.guards:
            check()

    async def _watch_status(self) -> None:
        """Every ``STATUS_EVERY``: which queued readers may no longer be mailed; every
        ``GUARD_EVERY``: whether this sender still holds its locks, else stop at once. (On the
        claims thread; a failed status read is left to the claims, which see the same
        database.)"""
        rounds = 0
        while True:
            await asyncio.sleep(STATUS_EVERY)
            rounds += 1
            if self.guards and rounds % round(GUARD_EVERY / STATUS_EVERY) == 0:
                try:
                    await asyncio.wrap_future(self.feeder.db.submit(
                        lambda _conn: self._check_guards()))
                except Exception as exc:  # the lock is gone: no further message
                    self.pool.stop(exc)
                    return
            queued = [c.subscriber_id for c in self.claims]
            queued += (self.outstanding[job.key].subscriber_id for job in self.ready)
            if queued:
                with contextlib.suppress(Exception):
                    gone: set[int] = await asyncio.wrap_future(
                        self.feeder.inactive_among(queued))
                    self.inactive |= gone

    def _wanted(self, job: Job) -> bool:
        """Asked by the pool right before the message goes out (after any rate-limit wait)."""
        c = self.outstanding.get(job.key)
        return c is None or c.subscriber_id not in self.inactive

    def _next_job(self) -> Job | Awaitable[Job | None] | None:
        """The next message to send: at once when it is at hand, else a coroutine that waits
        for room in the ledger (the crash bound) or for the next batch."""
        if self.ledger.uncommitted < self.ledger.gate:
            job = self._from_batch()
            if job is not None:
                return job
            if self.feeder.exhausted:
                return None
        return self._next_job_slow()

    async def _next_job_slow(self) -> Job | None:
        while True:
            await self.ledger.room()
            job = self._from_batch()  # nothing awaited since room(): the bound holds
            if job is not None:
                return job
            if self.feeder.exhausted:
                return None
            async with self.refill:
                if not self.claims and not self.ready:  # else another worker refilled
                    batch = await self.feeder.next()
                    if batch is None:
                        return None
                    self._take(batch)

    def _from_batch(self) -> Job | None:
        if not self.ready:
            # A run of messages at a time: the same code and templates back to back, in the
            # processor's caches, instead of one message between every two SMTP replies.
            while self.claims and len(self.ready) < PREPARE_AHEAD:
                c = self.claims.popleft()
                job = self._prepare(c, self.readers.get(c.subscriber_id),
                                    c.subscriber_id in self.inactive)
                if job is not None:
                    self.ready.append(job)
        return self.ready.popleft() if self.ready else None

    def _take(self, batch: ClaimedBatch) -> None:
        self.outstanding.update((c.delivery_id, c) for c in batch.claims)
        self.editions.update(batch.editions)
        self.readers = batch.readers
        self.inactive |= batch.inactive  # kept: jobs of the last batch may be in flight
        self.claims.extend(batch.claims)

    def _digest_for(self, edition: EditionKey, reader: ReaderView
                    ) -> tuple[RenderedDigest, tuple[int, ...]] | None:
        key = (edition, reader.topics, reader.last_digest_at, reader.received_article_ids,
               reader.plain_text_only, reader.locale)
        if key in self.memo:
            return self.memo[key]
        view, candidates = self.editions[edition]
        digest = compose(candidates, reader, view, max_items=self.settings.max_items,
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
        found = self._digest_for(c.edition_key, reader)
        if found is None:
            self._resolved(c).skipped(c, "nothing new for this reader")
            return None
        rendered, article_ids = found
        try:
            out = rendered.message_for(reader)
        except InvalidInput as exc:
            self._resolved(c).failed(c, None, exc.message)
            return None
        self.queued[c.delivery_id] = (self.editions[c.edition_key][0].cutoff, out.message_id,
                                      article_ids)
        return Job(c.delivery_id, out.sender, out.recipient, out.wire)

    def _resolved(self, c: Claim) -> Recorder:
        del self.outstanding[c.delivery_id]
        if self.tick is not None:
            self.tick(1)
        return self.recorder

    def _on_result(self, job: Job, reply: Reply) -> None:
        c = self.outstanding[job.key]
        cutoff, message_id, article_ids = self.queued.pop(job.key)
        # Journaled before anything else: the pool sends no further message on this
        # connection until this returns (the crash bound, see run.journal).
        self.journal.write(c, reply, cutoff, message_id, article_ids)
        hint = reply_hint(reply)  # e.g. too large: the operator's to fix, not the reader's
        if hint is not None:
            self.report.warn(f"{reply.line}: {hint}")
        record(self._resolved(c), c, reply, cutoff, message_id, article_ids)
