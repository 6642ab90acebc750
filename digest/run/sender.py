"""One streaming send: claim -> compose -> render -> send -> record, just in time.

Each SMTP worker, when its connection is free, pulls the next message. Deliveries are claimed
a batch at a time, one batch ahead, and each reader's digest is composed (memoized for readers
with the same inputs), rendered once per distinct digest and filled in per reader just in time.
Each reply is recorded, and written in small group commits. The database work (claims, reader
loads, result writes, heartbeats) runs on two threads of its own (``run.db_thread``), so the
event loop never waits on the database. Memory stays flat whatever the number of readers: two
claimed batches at most.

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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from digest.compose import ArticleView, EditionView, ReaderView, compose
from digest.config.errors import InvalidInput
from digest.config.settings import Settings
from digest.delivery.claims import Claim
from digest.delivery.results import Recorder
from digest.render.message import RenderedDigest, Renderer
from digest.run.claim_feeder import ClaimedBatch, ClaimFeeder, EditionKey
from digest.run.db_thread import DbThread
from digest.run.result_writer import ResultWriter
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply

if TYPE_CHECKING:
    from digest.run.report import RunReport

__all__ = ["Progress", "Sender", "heartbeat_every"]

Progress = Callable[[int], None]
_FLUSH_EVERY = 0.25  # seconds: results reach the database at least this often


def heartbeat_every(claim_timeout: float) -> float:
    """How often a sender refreshes its claims: several times per claim timeout, at least
    once a minute, so a live sender's claims never look stale to another process."""
    return max(min(claim_timeout / 4, 60.0), 0.05)


class Sender:
    """One streaming send: workers pull jobs; each is claimed, composed and rendered just in
    time, and its result recorded."""

    def __init__(self, engine: Engine, settings: Settings, report: RunReport,
                 tick: Progress | None, retry_deferred_before: dt.datetime | None,
                 worker: str) -> None:
        self.settings, self.report, self.tick = settings, report, tick
        self.renderer = Renderer(settings)
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.pool = SmtpPool(settings)
        batch = settings.batch_size
        if settings.send_rate > 0:  # rate-capped: hold claims (two batches) a minute at most
            batch = max(min(batch, int(settings.send_rate * 30)), settings.send_concurrency)
        self.threads = DbThread.for_sending(engine)
        self.feeder = ClaimFeeder(self.threads[0], settings, worker, batch,
                                  retry_deferred_before)
        self.ledger = ResultWriter(self.threads[1], worker, self.pool.stop)
        self.recorder = self.ledger.recorder
        self.outstanding: dict[int, Claim] = {}  # claimed, no result yet
        self.claims: deque[Claim] = deque()  # claimed, not yet handed to a worker
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
        """Give back what was claimed and never attempted; commit every result. (Blocking
        waits on the two threads: the sending is over.)"""
        try:
            leftover = self.feeder.close()
            if leftover is not None:
                self.outstanding.update((c.delivery_id, c) for c in leftover.claims)
            for waiting in self.outstanding.values():
                self.recorder.release(waiting)
            self.outstanding.clear()
        finally:
            self.report.take_counts(self.recorder.counts)
            self.report.reconnects = self.pool.reconnects
            try:
                self.ledger.close()
            finally:
                for thread in dict.fromkeys(self.threads):  # once each, even when shared
                    thread.close()

    async def _flush_often(self) -> None:
        every = heartbeat_every(self.settings.claim_timeout)
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(min(_FLUSH_EVERY, every))
            self.ledger.flush_soon()
            if time.monotonic() - last_beat >= every:
                last_beat = time.monotonic()
                self.ledger.beat()

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
                if not self.claims:  # else another worker refilled while we queued
                    batch = await self.feeder.next()
                    if batch is None:
                        return None
                    self._take(batch)

    def _from_batch(self) -> Job | None:
        while self.claims:
            c = self.claims.popleft()
            job = self._prepare(c, self.readers.get(c.subscriber_id),
                                c.subscriber_id in self.inactive)
            if job is not None:
                return job
        return None

    def _take(self, batch: ClaimedBatch) -> None:
        self.outstanding.update((c.delivery_id, c) for c in batch.claims)
        self.editions.update(batch.editions)
        self.readers, self.inactive = batch.readers, batch.inactive
        self.claims.extend(batch.claims)

    def _digest_for(self, edition: EditionKey, reader: ReaderView
                    ) -> tuple[RenderedDigest, tuple[int, ...]] | None:
        key = (edition, reader.topics, reader.last_digest_at, reader.received_article_ids,
               reader.plain_text_only)
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

