"""Say what a database failure means to the operator: ``database_fault`` turns a driver error
(SQLite or PostgreSQL, wrapped by SQLAlchemy) into a ``DatabaseFault`` with a hint.

Three kinds matter in practice: the disk is full, the connection was lost (server restart,
``pg_terminate_backend``, network), and everything else. None of them loses a delivery: rows
whose result was not written stay ``sending`` and the next run takes them back (see
``delivery.claims.reclaim_orphans``), so the hint always ends with "run it again".
"""

from __future__ import annotations

import enum

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from digest.config.errors import DatabaseFault

__all__ = ["FaultKind", "database_fault", "fault_kind"]

_AGAIN = ("nothing is lost: deliveries whose result was not recorded are taken back by the "
          "next run (a message the server had accepted may be sent once more, with the same "
          "Message-ID); run the same command again")
_DISK_FULL = ("database or disk is full", "no space left on device", "disk full",
              "could not extend file", "diskfull")
_CONNECTION_LOST = ("terminating connection", "server closed the connection",
                    "connection refused", "the database system is shutting down",
                    "the database system is starting up", "connection is closed",
                    "consuming input failed", "connection timed out", "could not connect",
                    "ssl syscall error", "admin shutdown", "connection already closed",
                    "the connection is lost", "server conn crashed")


class FaultKind(enum.Enum):
    DISK_FULL = "disk full"
    CONNECTION_LOST = "connection lost"
    OTHER = "other"


def fault_kind(exc: BaseException) -> FaultKind:
    """What kind of failure ``exc`` is (looking at the driver's message, down the chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{type(seen).__name__} {seen}".lower()
        if any(marker in text for marker in _DISK_FULL):
            return FaultKind.DISK_FULL
        if any(marker in text for marker in _CONNECTION_LOST) or (
                isinstance(seen, DBAPIError) and seen.connection_invalidated):
            return FaultKind.CONNECTION_LOST
        seen = seen.__cause__ or seen.__context__
    return FaultKind.OTHER


def database_fault(exc: SQLAlchemyError) -> DatabaseFault:
    """The operator's version of ``exc``: what happened and what to do."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    kind = fault_kind(exc)
    if kind is FaultKind.DISK_FULL:
        return DatabaseFault(f"The database's disk is full: {detail}",
                             "free space where DIGEST_DATABASE_URL points (the database "
                             f"file's folder, or the PostgreSQL server's disk); {_AGAIN}")
    if kind is FaultKind.CONNECTION_LOST:
        return DatabaseFault(f"The connection to the database was lost: {detail}",
                             "the server was restarted or the connection terminated; check "
                             f"that it is up (pg_isready) and reachable; {_AGAIN}")
    return DatabaseFault(f"The database failed: {detail}",
                         f"check the database server's log and DIGEST_DATABASE_URL; {_AGAIN}")
