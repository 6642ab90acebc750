"""Scale-out on PostgreSQL: ``digest send --join`` processes next to the planner, against a slow
real SMTP server. Every reader gets exactly one digest; a live sender's claims are never taken,
however long its batch takes; a SIGKILLed joiner's claims come back after the claim timeout;
and on SQLite ``--join`` is refused with a hint."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings
from digest.delivery.claims import claim, heartbeat, reclaim_orphans, release
from digest.delivery.plan import ensure_edition, plan
from digest.delivery.presence import Presence
from digest.run.result_writer import GATE
from digest.store.models import Delivery, DeliveryState, Frequency, Subscriber, utcnow
from tests.conftest import PG_URL, cli_env
from tests.forked_cli import DigestProcess, run_digest
from tests.sending_data import add_articles, add_readers
from tests.smtp_faults import FaultHandler, fault_server

postgres_only = pytest.mark.skipif(
    not PG_URL, reason="several senders need PostgreSQL (set DIGEST_TEST_DATABASE_URL); "
                       "on SQLite --join is refused, see test_join_is_refused_on_sqlite")


def _spawn(settings: Settings, cwd: Path, *args: str, claim_timeout: float) -> DigestProcess:
    """``digest send`` in a process of its own, forked ready-imported (tests/forked_cli.py)."""
    env = {**os.environ, **cli_env(settings),
           "DIGEST_SEND_CONCURRENCY": str(settings.send_concurrency),
           "DIGEST_BATCH_SIZE": str(settings.batch_size),
           "DIGEST_CLAIM_TIMEOUT": str(claim_timeout)}
    return run_digest("send", "--format", "json", *args, env=env, cwd=cwd)


def _rows(sessions: sessionmaker[Session]) -> list[Delivery]:
    with sessions() as session:
        return list(session.scalars(select(Delivery)))


def _wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _report(process: DigestProcess) -> dict[str, object]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.fixture
def readers(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    add_articles(sessions)
    emails = [f"cititor{i:03d}@example.ro" for i in range(150)]
    add_readers(sessions, emails)
    yield emails


@postgres_only
def test_planner_and_two_joiners_send_each_reader_exactly_once(
        settings: Settings, tmp_path: Path, sessions: sessionmaker[Session],
        readers: list[str]) -> None:
    # Batches take ~1.5 s to send, longer than the 1 s claim timeout: without the heartbeat
    # the other senders would take them as stale and readers would get two copies.
    # The server holds every reply until all three senders hold claims, so the joiners provably
    # share the work however slowly they start on a loaded machine.
    hold = threading.Event()
    with fault_server(FaultHandler(delay=0.1, hold=hold)) as (handler, port):
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=30,
                    smtp_timeout=120.0)
        planner = _spawn(s, tmp_path, claim_timeout=1)
        try:
            _wait_until(lambda: len(_rows(sessions)) == len(readers))  # planned
            joiners = [_spawn(s, tmp_path, "--join", claim_timeout=1) for _ in range(2)]
            _wait_until(lambda: len({r.claimed_by for r in _rows(sessions) if r.claimed_by}) == 3,
                        timeout=60)
        finally:
            hold.set()
        reports = [_report(p) for p in (planner, *joiners)]
    assert sorted(handler.accepted) == readers
    assert all(len(copies) == 1 for copies in handler.accepted.values())
    assert sum(r["sent"] for r in reports) == len(readers)  # type: ignore[misc]
    assert all(r["sent"] for r in reports[1:]), reports  # the joiners did share the work
    assert reports[0]["planned"] == len(readers) and reports[1]["joined"] is True
    assert {row.state for row in _rows(sessions)} == {DeliveryState.SENT}
    owners = {row.claimed_by for row in _rows(sessions)}
    assert len(owners) == 3 and all(str(p.pid) in " ".join(map(str, owners))
                                    for p in (planner, *joiners))


@postgres_only
def test_a_killed_joiners_claims_come_back_after_the_claim_timeout(
        settings: Settings, tmp_path: Path, sessions: sessionmaker[Session],
        readers: list[str]) -> None:
    timeout = 2.0
    handler = FaultHandler(delay=0.1)
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=10)
        planner = _spawn(s, tmp_path, claim_timeout=timeout)
        _wait_until(lambda: len(_rows(sessions)) == len(readers))
        # On a machine of its own: its reply journal is not there for the others to reconcile.
        victim = _spawn(replace(s, lock_dir=tmp_path / "machine-b"), tmp_path, "--join",
                        claim_timeout=timeout)
        mark = f":{victim.pid}:"

        def victims() -> list[Delivery]:
            return [r for r in _rows(sessions) if mark in (r.claimed_by or "")]

        _wait_until(lambda: any(r.state is DeliveryState.SENT for r in victims()))
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        killed_at = time.time()
        orphans = {r.id: r for r in victims() if r.state is DeliveryState.SENDING}
        assert orphans, "the joiner was killed holding claims"
        helper = _spawn(s, tmp_path, "--join", claim_timeout=timeout)
        done = [_report(planner), _report(helper)]
        if any(r.state is DeliveryState.SENDING for r in _rows(sessions)):
            # Both finished before the orphans went stale: a later joiner takes them.
            time.sleep(max(0.0, killed_at + timeout - time.time()))
            done.append(_report(_spawn(s, tmp_path, "--join", claim_timeout=timeout)))
    assert {row.state for row in _rows(sessions)} == {DeliveryState.SENT}
    assert sorted(handler.accepted) == readers  # nothing lost
    # The orphans were sent by someone else, and only once their claim had gone stale.
    by_id = {row.id: row for row in _rows(sessions)}
    with sessions() as session:
        emails = {i: e for i, e in session.execute(select(Subscriber.id, Subscriber.email))}
    for delivery_id, orphan in orphans.items():
        assert mark not in (by_id[delivery_id].claimed_by or "")
        stale_at = orphan.claimed_at.timestamp() + timeout  # type: ignore[union-attr]
        later = [t for t in handler.accepted_at[emails[orphan.subscriber_id]] if t > killed_at]
        assert later and min(later) >= stale_at - 0.05, (later, stale_at)
    resent = sum(len(c) - 1 for c in handler.accepted.values())
    assert resent <= GATE + s.send_concurrency  # the bound of a takeover from another machine
    assert sum(r["sent"] for r in done) > 0


@postgres_only
def test_the_planner_takes_back_only_the_rows_of_senders_that_are_gone(
        engine: Engine, sessions: sessionmaker[Session], readers: list[str]) -> None:
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, dt.date(2026, 11, 27))
        plan(conn, edition_id, Frequency.DAILY)
    with Presence(engine) as live:
        assert live.count(":") == 2
        with engine.begin() as conn:
            mine = claim(conn, live, 5, claim_timeout=600)
            gone = claim(conn, "host:1:dead", 3, claim_timeout=600)
            assert reclaim_orphans(conn) == len(gone)  # not the live joiner's five
        later = utcnow() + dt.timedelta(seconds=30)
        with engine.begin() as conn:
            assert heartbeat(conn, live, now=later) == len(mine)
            # Refreshed: 590 s after the heartbeat (620 s after the claim) still not stale...
            taken = claim(conn, "other", 500, claim_timeout=600,
                          now=later + dt.timedelta(seconds=590))
            assert len(taken) == len(readers) - len(mine)
            assert not {c.delivery_id for c in taken} & {c.delivery_id for c in mine}
            # ...but stale once a whole timeout has passed without one.
            stale = claim(conn, "other", 500, claim_timeout=600,
                          now=later + dt.timedelta(seconds=601))
            assert {c.delivery_id for c in stale} == {c.delivery_id for c in mine}
            release(conn, [c.delivery_id for c in [*taken, *stale]])
            assert claim(conn, live, 5, claim_timeout=600) != []
    with engine.begin() as conn:  # its process is gone now: its rows come back at once
        assert reclaim_orphans(conn) == 5


@pytest.mark.skipif(bool(PG_URL), reason="the refusal is for SQLite")
def test_join_is_refused_on_sqlite(smtp_settings: Settings, sessions: sessionmaker[Session],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["send", "--join"], env=cli_env(smtp_settings))
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.stderr and "Hint: run plain `digest send`" in result.stderr


def test_join_takes_no_date_and_no_dry_run(smtp_settings: Settings,
                                           sessions: sessionmaker[Session],
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for extra in (["--date", "2026-11-27"], ["--dry-run"], ["--frequency", "weekly"]):
        result = CliRunner().invoke(main, ["send", "--join", *extra],
                                    env=cli_env(smtp_settings))
        assert result.exit_code == 2 and "--join cannot be combined" in result.stderr, extra
    help_text = CliRunner().invoke(main, ["send", "--help"]).output
    assert "--join" in help_text and "digest send --join" in help_text
