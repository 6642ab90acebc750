"""One run at a time: the lock that makes an overlapping ``digest run`` exit 75 at once.

On SQLite it is an ``flock`` on a lock file (in ``DIGEST_LOCK_DIR``, else next to the database
file); on PostgreSQL a session-level ``pg_try_advisory_lock`` held on a dedicated connection for
the whole run, keyed by the current schema so that two installations sharing a database do not
block each other. Both are released by the operating system or the server when the process dies,
so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from digest.config.errors import DatabaseFault, LockHeld
from digest.config.settings import Settings

__all__ = ["RunLock", "check_lock_connection", "lock_path"]

# The first key of the two-key advisory lock: "digest" in ASCII, so the lock is easy to spot
# in pg_locks and unlikely to collide with another application's.
_PG_NAMESPACE = 0x64696765


def lock_path(engine: Engine, settings: Settings) -> Path:
    """The lock file for this SQLite database."""
    database = engine.url.database
    if settings.lock_dir is not None or not database or database == ":memory:":
        folder = settings.lock_dir or Path.cwd()
        tag = hashlib.sha256(str(engine.url).encode()).hexdigest()[:12]
        return folder / f"digest-{tag}.lock"
    return Path(f"{os.path.abspath(database)}.lock")


def _held(where: str) -> LockHeld:
    return LockHeld(f"Another digest run holds the lock ({where}); nothing was sent.",
                    "wait for it to finish; if no digest process is running, the lock is "
                    "released already and this run can simply be repeated")


def check_lock_connection(connection: Connection, what: str) -> None:
    """A round trip on the connection that holds a session-level advisory lock: if it fails,
    the session has ended and the lock with it (``pg_terminate_backend``, a server restart),
    and the sender must stop claiming at once. Costs one ``SELECT 1``."""
    try:
        connection.exec_driver_sql("SELECT 1")
        connection.commit()
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        raise DatabaseFault(
            f"This run lost its {what}: the database connection holding it ended ({detail}).",
            "the PostgreSQL server was restarted or the connection terminated; this run "
            "stopped claiming at once, so that no other sender takes the same deliveries. "
            "Nothing is lost: run the same command again to finish the edition") from exc


class RunLock:
    """``with RunLock(engine, settings):`` -- raises ``LockHeld`` when another run has it."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._fd: int | None = None
        self._connection: Connection | None = None

    def acquire(self) -> None:
        if self.engine.dialect.name == "postgresql":
            self._acquire_pg()
        else:
            self._acquire_file()

    def _acquire_file(self) -> None:
        path = lock_path(self.engine, self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _held(str(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for the operator's curiosity only
        self._fd = fd

    def _acquire_pg(self) -> None:
        connection = self.engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:ns, hashtext(current_schema()))"),
                {"ns": _PG_NAMESPACE}).scalar()
            connection.commit()  # the lock is session-level: it outlives this transaction
        except BaseException:
            connection.close()
            raise
        if not got:
            connection.close()
            raise _held("PostgreSQL advisory lock")
        self._connection = connection

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:ns, hashtext(current_schema()))"),
                    {"ns": _PG_NAMESPACE})
                self._connection.commit()
            except SQLAlchemyError:  # the session is gone already, and its lock with it
                self._connection.invalidate()
            finally:
                self._connection.close()  # closing the session releases it in any case
                self._connection = None

    def check(self) -> None:
        """Raise ``DatabaseFault`` if the lock was lost (PostgreSQL; a file lock cannot be)."""
        if self._connection is not None:
            check_lock_connection(self._connection, "run lock")

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
