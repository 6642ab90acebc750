"""Write each group of results (``delivery.results``) and the heartbeat on the ledger thread.

Every reply is in the journal (``run.journal``) before the next message leaves its connection,
so the group commits no longer decide what a crash can resend: they only keep memory bounded
and the ledger current. A worker takes a new message only while fewer than ``GATE`` results
are uncommitted (buffered, or being written); a group is handed to the writer every
``FLUSH_AT`` results (or on the timer), so the next one fills while it is written. When a group
is committed the journal is told how far the ledger has caught up, and drops the segments it
no longer needs.

``GATE`` still bounds what a crash *of the machine* (page cache lost with the journal's last
lines) or a takeover from another machine (``--join``: a dead sender's rows reclaimed before
its journal was reconciled) can resend: fewer than ``GATE + DIGEST_SEND_CONCURRENCY``.

**Sizes.** Groups of 2,000 (at full speed the 0.25 s timer hands them over first), with room
for 1,000 more while one is written (25-50 ms on PostgreSQL: under 400 messages at 7,500/s).
Against groups of 500 with a gate of 1,000: PostgreSQL 3.07-3.35x the ceiling instead of
2.79-2.96x (``bench/send.py``, with ``DIGEST_BATCH_SIZE`` 2,000 for 500: three alternating
runs), fewer transactions and thread hand-offs per message; the machine-crash bound above
went from 1,004 to 3,004 (a crash of the process is still bounded by the journal: one per
connection).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable
from typing import TYPE_CHECKING

from digest.delivery.claims import heartbeat
from digest.delivery.results import GROUP_COMMIT, Recorder, Results
from digest.run.db_thread import DbThread

if TYPE_CHECKING:
    from digest.run.journal import Journal

__all__ = ["FLUSH_AT", "GATE", "ResultWriter"]


FLUSH_AT = GROUP_COMMIT  # results handed to the writer at once
GATE = GROUP_COMMIT + 1000  # no new message while this many results are uncommitted (above)


class ResultWriter:
    """Results are recorded on the loop (``recorder``) and written on the ledger thread."""

    gate = GATE

    def __init__(self, db: DbThread, worker: str,
                 on_error: Callable[[BaseException], None], journal: Journal | None = None
                 ) -> None:
        self.worker = worker
        self.journal = journal
        self.recorder = Recorder(db.engine, group=FLUSH_AT, on_full=self.flush_soon)
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
        # Every reply journaled so far is in ``taken`` or committed already (the journal and
        # the recorder are written in the same plain call): this group's commit covers them.
        upto = self.journal.count if self.journal is not None else 0
        write = self._write = self.db.submit(taken.write)
        if write.done():  # inline (SQLite): written already
            self._done(write, upto)
        else:
            asyncio.wrap_future(write).add_done_callback(lambda _: self._done(write, upto))

    def _done(self, write: cf.Future[None], upto: int) -> None:
        if self._closed:
            return  # close() has dealt with it
        taken, self._writing, self._write = self._writing, None, None
        error = None if write.cancelled() else write.exception()
        if error is None and self.journal is not None:
            self.journal.committed(upto)
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
