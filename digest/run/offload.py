"""The database side of a streaming send, off the event loop.

Every database round trip of a send -- claiming a batch and loading its readers, writing a
group of results, refreshing claims -- runs on a thread of its own, so that the event loop keeps
every SMTP connection busy meanwhile (on PostgreSQL those round trips used to leave the
connections idle). Two threads, each with a dedicated connection:

- ``ClaimFeeder`` claims the *next* batch while the current one is being sent (one batch ahead
  at most, so memory stays flat and claims are not hoarded);
- ``LedgerWriter`` writes each group of results (``ledger.Results``) and the heartbeat.

On SQLite the work stays on the event loop's thread (``DbThread(inline=True)``, same code
path): a local file answers in microseconds, so there is no waiting to hide, and measured with
``bench/send.py`` threads made it slower -- two threads wait on each other's write locks
(SQLite's busy handler sleeps in coarse steps) and the GIL hand-offs cost CPU.

SQLAlchemy connections are not thread-safe: each ``DbThread`` opens its connection on its own
single worker thread, uses it only there and closes it there.

**The crash bound stays true.** A worker takes a new message only while fewer than
``GROUP_COMMIT`` results are uncommitted (buffered, or being written), so at any moment at most
``GROUP_COMMIT - 1`` results plus one message per connection are at risk, i.e. fewer than
``GROUP_COMMIT + DIGEST_SEND_CONCURRENCY`` (see ``delivery.results``). A group is handed to
the writer when half full, so the next half fills while it is written and nobody waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine

from digest.compose import ArticleView, EditionView, ReaderView
from digest.config.settings import Settings
from digest.delivery.claims import Claim, claim, heartbeat
from digest.delivery.results import GROUP_COMMIT, Recorder, Results
from digest.delivery.snapshots import edition_view_for, load_candidates, readers_for

__all__ = ["FLUSH_AT", "ClaimFeeder", "ClaimedBatch", "DbThread", "LedgerWriter"]

T = TypeVar("T")
FLUSH_AT = GROUP_COMMIT // 2  # results handed to the writer at once (the gate is GROUP_COMMIT)


class DbThread:
    """One thread with one connection; ``submit`` runs a function in a transaction there.
    ``inline``: no thread, the work runs at once on the caller's thread (SQLite, see above)."""

    def __init__(self, engine: Engine, name: str, *, inline: bool = False) -> None:
        self.engine = engine
        self._executor = None if inline else cf.ThreadPoolExecutor(max_workers=1,
                                                                   thread_name_prefix=name)
        self._connection: Connection | None = None

    @property
    def inline(self) -> bool:
        return self._executor is None

    @staticmethod
    def for_sending(engine: Engine) -> tuple[DbThread, DbThread]:
        """The claims thread and the ledger thread; on SQLite, no thread at all."""
        if engine.dialect.name == "sqlite":
            one = DbThread(engine, "digest-db", inline=True)
            return one, one
        claims = DbThread(engine, "digest-claims")
        return claims, DbThread(engine, "digest-ledger")

    def submit(self, work: Callable[[Connection], T]) -> cf.Future[T]:
        if self._executor is not None:
            return self._executor.submit(self._run, work)
        done: cf.Future[T] = cf.Future()
        try:
            done.set_result(self._run(work))
        except Exception as exc:  # delivered through the future, as from a thread
            done.set_exception(exc)
        return done

    def _run(self, work: Callable[[Connection], T]) -> T:
        if self._connection is None:
            self._connection = self.engine.connect()
        try:
            with self._connection.begin():
                return work(self._connection)
        except BaseException:
            # Not reused, not even through the pool: the next call opens a fresh connection.
            self._connection.invalidate()
            self._close()
            raise

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Wait for the work queued so far, then close the connection on its own thread."""
        if self._executor is None:
            self._close()
            return
        self._executor.submit(self._close).result()
        self._executor.shutdown()


Edition = tuple[EditionView, list[ArticleView]]


@dataclass
class ClaimedBatch:
    """Claimed deliveries with what composing them needs (plain data, read-only once made)."""

    claims: list[Claim]
    readers: dict[int, ReaderView]
    inactive: set[int]
    editions: dict[int, Edition] = field(default_factory=dict)


class ClaimFeeder:
    """Claims batches on the claims thread, one batch ahead of the sending."""

    def __init__(self, db: DbThread, settings: Settings, worker: str, batch: int,
                 retry_deferred_before: dt.datetime | None) -> None:
        self.settings, self.worker, self.batch = settings, worker, batch
        self.retry_before = retry_deferred_before
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.db = db
        self.exhausted = False
        self._next: cf.Future[ClaimedBatch | None] | None = None
        self._cursor = 0  # the highest id claimed: pending rows below are all taken
        self._editions: dict[int, Edition] = {}  # on the claims thread only

    def _claim(self, conn: Connection) -> ClaimedBatch | None:
        """On the claims thread: the claim, then the batch's readers, in one transaction."""
        claims = claim(conn, self.worker, self.batch, claim_timeout=self.settings.claim_timeout,
                       retry_deferred_before=self.retry_before, after_id=self._cursor)
        if not claims:
            return None
        self._cursor = max(self._cursor, claims[-1].delivery_id)
        editions = {c.edition_id: self._edition(conn, c.edition_id) for c in claims}
        since = min(view.cutoff for view, _ in editions.values()) - self.lookback
        readers, inactive = readers_for(conn, [c.subscriber_id for c in claims], since)
        return ClaimedBatch(claims, readers, inactive, editions)

    def _edition(self, conn: Connection, edition_id: int) -> Edition:
        found = self._editions.get(edition_id)
        if found is None:
            view = edition_view_for(conn, edition_id, self.settings.timezone)
            found = self._editions[edition_id] = (view, load_candidates(conn, view,
                                                                        self.lookback))
        return found

    def _ahead(self) -> None:
        if self._next is None and not self.exhausted:
            self._next = self.db.submit(self._claim)

    async def next(self) -> ClaimedBatch | None:
        """The next batch (None: nothing left), and the claim of the one after it begun."""
        self._ahead()
        if self._next is None:
            return None
        # Left in self._next until its result is in hand: if this await is cancelled,
        # close() still finds the batch and hands it back for release.
        got = await asyncio.wrap_future(self._next)
        self._next = None
        if got is None:
            self.exhausted = True
        else:
            self._ahead()
        return got

    def close(self) -> ClaimedBatch | None:
        """Stop; the batch claimed ahead and never handed out, if any (to be released)."""
        leftover, self.exhausted = None, True
        try:
            if self._next is not None and not self._next.cancelled():
                leftover = self._next.result()  # waits for a claim under way
        finally:
            self._next = None
        return leftover


class LedgerWriter:
    """Results are recorded on the loop (``recorder``) and written on the ledger thread."""

    gate = GROUP_COMMIT  # no new message while this many results are uncommitted

    def __init__(self, db: DbThread, worker: str,
                 on_error: Callable[[BaseException], None]) -> None:
        self.worker = worker
        # Threaded, a group is handed over half full (see above); inline, it is written whole.
        self.recorder = Recorder(db.engine, group=GROUP_COMMIT if db.inline else FLUSH_AT,
                                 on_full=self.flush_soon)
        self.db = db
        self._on_error = on_error
        self._writing: Results | None = None  # the group being written
        self._write: cf.Future[None] | None = None
        self._written = asyncio.Event()
        self.error: BaseException | None = None
        self._closed = False

    @property
    def uncommitted(self) -> int:
        return len(self.recorder) + (len(self._writing) if self._writing is not None else 0)

    def flush_soon(self) -> None:
        """Hand the buffered results to the writer (unless a write is under way: when it
        ends, the next one starts)."""
        if self._writing is not None or self._closed or not len(self.recorder):
            return
        taken = self._writing = self.recorder.take()
        write = self._write = self.db.submit(taken.write)
        if write.done():  # inline (SQLite): written already
            self._done(write)
        else:
            asyncio.wrap_future(write).add_done_callback(lambda _: self._done(write))

    def _done(self, write: cf.Future[None]) -> None:
        if self._closed:
            return  # close() has dealt with it
        taken, self._writing, self._write = self._writing, None, None
        error = None if write.cancelled() else write.exception()
        if error is not None:
            assert taken is not None
            self.recorder.put_back(taken)  # kept: the final flush tries them again
            self.error = error
            self._on_error(error)
        self._written.set()
        if error is None and len(self.recorder) >= self.recorder.group:
            self.flush_soon()

    async def room(self) -> None:
        """Wait until another message may be sent without breaking the crash bound."""
        while self.uncommitted >= self.gate:
            if self.error is not None:
                raise self.error
            self.flush_soon()
            self._written.clear()
            await self._written.wait()

    def beat(self) -> None:
        """Refresh this sender's claims (on the ledger thread, in order with the writes)."""
        if not self._closed:
            future = asyncio.wrap_future(self.db.submit(lambda c: heartbeat(c, self.worker)))
            future.add_done_callback(self._beat_done)

    def _beat_done(self, future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._on_error(future.exception())  # type: ignore[arg-type]

    def close(self) -> None:
        """Write everything still buffered (after any write under way). Blocking: called once,
        when the sending is over."""
        self._closed = True
        rest = self.recorder.take()
        if self._write is not None and self._writing is not None:
            if self._write.exception() is not None:  # waits for it; failed: try again
                rest.extend(self._writing)
            self._write = self._writing = None
        if len(rest):
            try:
                self.db.submit(rest.write).result()
            except BaseException:
                self.recorder.put_back(rest)
                raise
