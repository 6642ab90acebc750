"""The database side of a send, off the event loop: one thread with one connection.

Every database round trip of a send -- claiming a batch and loading its readers, writing a
group of results, refreshing claims -- runs on a thread of its own, so that the event loop keeps
every SMTP connection busy meanwhile (on PostgreSQL those round trips used to leave the
connections idle). Two threads, each with a dedicated connection: the claims thread
(``run.claim_feeder``) and the ledger thread (``run.result_writer``).

On SQLite the work stays on the event loop's thread (``DbThread(inline=True)``, same code
path): a local file answers in microseconds, so there is no waiting to hide, and measured with
``bench/send.py`` threads made it slower -- two threads wait on each other's write locks
(SQLite's busy handler sleeps in coarse steps) and the GIL hand-offs cost CPU.

SQLAlchemy connections are not thread-safe: each ``DbThread`` opens its connection on its own
single worker thread, uses it only there and closes it there.

**Index lookups only, on PostgreSQL.** Every statement of a send looks rows up by key: a batch's
ids (``= ANY``), the pending rows from the claim cursor on, this sender's claims. On a table
not analyzed yet -- a fresh import, or the bench's 20,000 readers -- PostgreSQL priced 500 key
lookups above a scan of the whole table and scanned: ``subscribers`` and ``deliveries`` in full
for each batch's reads and each status check, 72 us of server CPU per message on the same two
cores (``bench/send.py``). The send's two connections therefore run with
``enable_seqscan = off`` (a scan stays possible where no index serves), reset before the
connection goes back to the pool; ``tests/test_deliveries.py`` explains each statement.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

__all__ = ["INDEX_LOOKUPS", "DbThread"]

INDEX_LOOKUPS = "SET enable_seqscan = off"  # the send's PostgreSQL connections (see above)


T = TypeVar("T")


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
            self._connection = self._connect()
        try:
            with self._connection.begin():
                return work(self._connection)
        except BaseException:
            # Not reused, not even through the pool: the next call opens a fresh connection.
            self._connection.invalidate()
            self._close()
            raise

    def _connect(self) -> Connection:
        connection = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            try:
                connection.exec_driver_sql(INDEX_LOOKUPS)
                connection.commit()
            except BaseException:
                connection.invalidate()
                connection.close()
                raise
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            if self.engine.dialect.name == "postgresql" and not self._connection.invalidated:
                with contextlib.suppress(Exception):  # else the pool's reset drops it anyway
                    self._connection.exec_driver_sql("RESET enable_seqscan")
                    self._connection.commit()
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Wait for the work queued so far, then close the connection on its own thread."""
        if self._executor is None:
            self._close()
            return
        self._executor.submit(self._close).result()
        self._executor.shutdown()
