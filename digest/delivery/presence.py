"""Who is sending: a unique name per sender process, and (on PostgreSQL) proof that it is alive.

Each sender (the planner of ``digest send``/``run`` and every ``digest send --join``) stamps
the rows it claims with ``claimed_by`` = ``host:pid:random``, unique across machines and
restarts. On PostgreSQL it also holds, for its whole run, a session-level advisory lock keyed by
``hashtextextended(claimed_by, 0)`` on a dedicated connection. The server drops that lock the
moment the process's connection ends (exit, crash, SIGKILL), so another process can tell a dead
claimant from a live one by trying the same key: ``deliveries.reclaim_orphans`` does exactly
that. On SQLite there is only ever one sender (the run lock), so presence is a no-op there.

A claimant whose machine vanished without closing its TCP connection keeps its lock until the
server notices (TCP keepalive); its rows still come back through the claim timeout, because a
dead process stops refreshing its claims (see ``deliveries.heartbeat``).
"""

from __future__ import annotations

import os
import secrets
import socket
from types import TracebackType

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from digest.delivery.run_lock import check_lock_connection

__all__ = ["Presence", "new_worker_id"]

_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:worker, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:worker, 0))")


def new_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in ``digest status`` and pg_locks."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Presence:
    """``with Presence(engine) as worker:`` -- this process's claimant name, held alive."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.worker = new_worker_id()
        self._connection: Connection | None = None

    def __enter__(self) -> str:
        if self.engine.dialect.name != "postgresql":
            return self.worker
        connection = self.engine.connect()
        try:
            # A 64-bit hash collision with a live sender is astronomically unlikely; if it
            # ever happens, pick another name rather than share a key.
            while not connection.execute(_TRY, {"worker": self.worker}).scalar():
                self.worker = new_worker_id()
            connection.commit()  # session-level: the lock outlives this transaction
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return self.worker

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:  # the connection goes back to the pool: the session (and its lock) would not end
            connection.execute(_UNLOCK, {"worker": self.worker})
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()  # gone already (terminated, restarted): no lock is held
        except BaseException:
            connection.invalidate()  # a closed session holds no lock either
            raise
        finally:
            connection.close()

    def check(self) -> None:
        """Raise ``DatabaseFault`` if the connection holding this sender's presence is gone:
        other senders may then take its claims as a dead sender's (``reclaim_orphans``)."""
        if self._connection is not None:
            check_lock_connection(self._connection, "presence lock")
