"""The database fails in the middle of a send: the disk fills (SQLite on a real, small tmpfs),
PostgreSQL connections are terminated (``pg_terminate_backend``: one of the sender's, all of
them as in a restart, or the one holding the run lock). Each ends in a clear error with a hint
and exit code 1, nothing is lost, and the next run finishes the edition."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import DatabaseFault
from digest.config.settings import Settings
from digest.delivery.results import GROUP_COMMIT
from digest.run.commands import send_digest
from digest.run.sender import GUARD_EVERY
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from digest.store.faults import FaultKind, database_fault, fault_kind
from digest.store.models import Delivery, DeliveryState
from tests.conftest import PG_URL
from tests.sending_data import add_articles, add_readers
from tests.smtp_faults import FaultHandler, fault_server

READERS = [f"cititor{i:03d}@example.ro" for i in range(100)]
CONCURRENCY = 2


def _states(sessions: sessionmaker[Session]) -> Counter[DeliveryState]:
    with sessions() as session:
        return Counter(session.scalars(select(Delivery.state)))


def _finished(handler: FaultHandler, sessions: sessionmaker[Session]) -> None:
    """Every reader has their digest, a handful at most twice, and the ledger says sent."""
    assert sorted(handler.accepted) == READERS
    twice = sum(len(copies) - 1 for copies in handler.accepted.values())
    assert twice <= GROUP_COMMIT + CONCURRENCY
    assert _states(sessions) == {DeliveryState.SENT: len(READERS)}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 6 MB filesystem (tmpfs), to fill up."""
    if PG_URL:
        pytest.skip("SQLite's disk: the PostgreSQL run covers terminated connections")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr!r}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_disk_that_fills_during_the_send(settings: Settings, small_disk: Path) -> None:
    s = replace(settings, database_url=f"sqlite:///{small_disk / 'digest.db'}",
                send_concurrency=CONCURRENCY, batch_size=20)
    engine = make_engine(s.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    add_articles(sessions)
    add_readers(sessions, READERS)
    filled: list[Path] = []
    handler = FaultHandler(delay=0.005, on_accept=lambda n: n == 30 and filled.append(
        _fill(small_disk)))
    with fault_server(handler) as (_, port):
        first = send_digest(engine, replace(s, smtp_port=port))
        assert filled and isinstance(first.error, DatabaseFault)
        assert "disk is full" in first.error.message and first.exit_code == 1
        assert "free space" in first.error.hint and "run the same command again" in first.error.hint
        assert sum(len(c) for c in handler.accepted.values()) < len(READERS)  # it stopped
        filled[0].unlink()  # the operator frees space
        again = send_digest(engine, replace(s, smtp_port=port))
    assert again.error is None and again.exit_code == 0
    _finished(handler, sessions)
    engine.dispose()


postgres_only = pytest.mark.skipif(not PG_URL, reason="pg_terminate_backend: PostgreSQL only")


def _terminate(admin: Engine, application: str, which: str) -> None:
    """End the sender's backends: ``one`` the connection writing results, ``all`` as a
    restart does, ``lock`` the one holding the run lock."""
    ours = "application_name = :app AND pid <> pg_backend_pid()"
    # The ledger thread's connection is the sender's newest (lock, presence, claims, ledger).
    newest = (f"pid = (SELECT pid FROM pg_stat_activity WHERE {ours} AND pid NOT IN "
              "(SELECT pid FROM pg_locks WHERE locktype = 'advisory') "
              "ORDER BY backend_start DESC LIMIT 1)")
    where = {"one": f"{ours} AND {newest}", "all": ours,
             "lock": f"{ours} AND pid IN (SELECT pid FROM pg_locks WHERE locktype = "
                     "'advisory' AND classid = 1684629349)"}[which]
    with admin.begin() as conn:
        pids = conn.scalars(text(f"SELECT pid FROM pg_stat_activity WHERE {where}"),
                            {"app": application}).all()
        assert pids and (which != "one" or len(pids) == 1), (which, pids)
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@postgres_only
@pytest.mark.parametrize("which", ["one", "all", "lock"])
def test_terminated_connections_during_the_send(settings: Settings, which: str) -> None:
    application = f"digest-test-{uuid.uuid4().hex[:8]}"
    engine = make_engine(settings.database_url, connect_args={"application_name": application})
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    add_articles(sessions)
    add_readers(sessions, READERS)
    admin = create_engine(settings.database_url)
    ended: list[float] = []
    problems: list[BaseException] = []

    def cut(accepted: int) -> None:
        if accepted == 20 and not ended:
            try:
                _terminate(admin, application, which)
            except BaseException as exc:  # seen by the assertion below, not lost in a thread
                problems.append(exc)
            ended.append(time.time())

    handler = FaultHandler(delay=0.04, on_accept=cut)
    s = replace(settings, send_concurrency=CONCURRENCY, batch_size=20)
    with fault_server(handler) as (_, port):
        first = send_digest(engine, replace(s, smtp_port=port))
        assert ended and not problems, problems
        assert isinstance(first.error, DatabaseFault), first.error
        assert first.exit_code == 1 and "run the same command again" in first.error.hint
        if which == "lock":  # no claim, and no message begun, once the lock is known gone
            assert "run lock" in first.error.message
            late = [t for times in handler.rcpt_at.values() for t in times
                    if t > ended[0] + GUARD_EVERY + 0.3]
            assert not late, f"{len(late)} messages after the lock was lost"
        assert sum(len(c) for c in handler.accepted.values()) < len(READERS)  # it stopped
        handler.delay = 0  # slow only so that the cut lands mid-send; the rerun just finishes
        again = send_digest(engine, replace(s, smtp_port=port))
    assert again.error is None and again.exit_code == 0
    _finished(handler, sessions)
    engine.dispose()
    admin.dispose()


def test_database_errors_are_told_apart() -> None:
    full = OperationalError("INSERT", {}, Exception("database or disk is full"))
    gone = OperationalError("SELECT 1", {}, Exception(
        "terminating connection due to administrator command"))
    other = OperationalError("SELECT 1", {}, Exception("no such table: deliveries"))
    assert fault_kind(full) is FaultKind.DISK_FULL
    assert fault_kind(gone) is FaultKind.CONNECTION_LOST
    assert fault_kind(other) is FaultKind.OTHER
    assert "disk is full" in database_fault(full).message
    assert "pg_isready" in database_fault(gone).hint
    assert database_fault(other).exit_code == 1
