"""``digest send/run/status`` as operators and cron use them: exit codes, the summary line and
JSON, the lock, and real processes -- two at once, and one killed with SIGKILL mid-run."""

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
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed
from digest.cli import main
from digest.config.settings import Settings
from digest.delivery.run_lock import RunLock
from digest.store.models import Delivery, DeliveryState, Feed
from tests.conftest import SmtpServer, cli_env, free_port
from tests.forked_cli import DigestProcess, run_digest
from tests.sending_data import add_articles, add_others, add_readers
from tests.smtp_faults import FaultHandler, fault_server

READERS = [f"cititor{i:02d}@example.ro" for i in range(60)]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)  # no stray .env

    def run(settings: Settings, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env=cli_env(settings))
        return result.exit_code, result.stdout, result.stderr

    yield run


def _states(sessions: sessionmaker[Session]) -> list[DeliveryState]:
    with sessions() as session:
        return list(session.scalars(select(Delivery.state)))


def test_send_prints_a_summary_or_json_and_exits_0(invoke, smtp_settings: Settings,  # type: ignore[no-untyped-def]
                                                  smtp_server: SmtpServer,
                                                  sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:3])
    add_others(sessions)
    code, out, _ = invoke(smtp_settings, "send", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert {k: report[k] for k in ("planned", "sent", "deferred", "failed", "skipped")} == {
        "planned": 4, "sent": 3, "deferred": 0, "failed": 0, "skipped": 1}
    assert report["duration_s"] >= 0 and "messages_per_s" in report
    code, out, _ = invoke(smtp_settings, "send")
    assert code == 0 and out.strip().splitlines()[-1].startswith("schedule")
    assert "planned 0, sent 0" in out
    code, out, _ = invoke(smtp_settings, "status", "--format", "json")
    [edition] = json.loads(out)["editions"]
    assert edition["counts"] == {"pending": 0, "sending": 0, "sent": 3, "deferred": 0,
                                 "failed": 0, "skipped": 1}
    code, out, _ = invoke(smtp_settings, "status")
    assert code == 0 and "SENT" in out.splitlines()[0]


def test_deferred_exits_1_and_retry_deferred_finishes(invoke, settings: Settings,  # type: ignore[no-untyped-def]
                                                      sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:3])
    handler = FaultHandler(script={READERS[1]: ["451 4.3.0 greylisted"]})
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port)
        code, out, _ = invoke(s, "send")
        assert code == 1 and "deferred 1" in out
        code, out, _ = invoke(s, "send", "--retry-deferred")
        assert code == 0 and "sent 1" in out
    assert sorted(handler.accepted) == READERS[:3]


def test_configuration_errors_exit_2_and_a_held_lock_exits_75(  # type: ignore[no-untyped-def]
        invoke, smtp_settings: Settings, sessions: sessionmaker[Session]) -> None:
    code, _, err = invoke(replace(smtp_settings, postal_address=""), "send")
    assert code == 2 and "DIGEST_POSTAL_ADDRESS" in err and "Hint:" in err
    engine = sessions.kw["bind"]
    with sessions.begin() as session:
        add_feed(session, f"http://127.0.0.1:{free_port()}/feed.xml")
    with RunLock(engine, smtp_settings):
        code, _, err = invoke(smtp_settings, "send")
        assert code == 75 and "lock" in err
        code, _, err = invoke(smtp_settings, "run")
        assert code == 75  # at once: not even the feeds were fetched
    assert _states(sessions) == []
    with sessions() as session:
        assert session.scalars(select(Feed.last_fetched_at)).one() is None


def test_run_fetches_then_sends_and_reports_a_failed_feed(  # type: ignore[no-untyped-def]
        invoke, smtp_settings: Settings, smtp_server: SmtpServer,
        sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:2])
    with sessions.begin() as session:
        add_feed(session, f"http://127.0.0.1:{free_port()}/feed.xml")  # nobody listens there
    code, out, _ = invoke(smtp_settings, "run", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["feeds_failed"] == 1 and report["sent"] == 2
    assert len(smtp_server.received) == 2


def test_every_command_has_help_with_an_example() -> None:
    for command in ("send", "run", "status", "sink", "demo"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command


# --- real processes ----------------------------------------------------------------------

def _spawn(settings: Settings, cwd: Path, *args: str) -> DigestProcess:
    """``digest send`` in a process of its own, forked ready-imported (tests/forked_cli.py)."""
    env = {**os.environ, **cli_env(settings), "DIGEST_SEND_CONCURRENCY":
           str(settings.send_concurrency), "DIGEST_BATCH_SIZE": str(settings.batch_size)}
    return run_digest("send", *args, env=env, cwd=cwd)


def test_two_sends_at_once_send_nothing_twice(settings: Settings, tmp_path: Path,
                                              sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:20])
    hold = threading.Event()
    with fault_server(FaultHandler(hold=hold)) as (handler, port):
        # The held replies must outlast the second run's start on a loaded machine.
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=5,
                    smtp_timeout=120.0)
        first = _spawn(s, tmp_path)
        try:
            # The first run is provably mid-send: its first message is at the server, held.
            assert handler.arrived.wait(30), "the first run never reached the server"
            second = _spawn(s, tmp_path)
            _, err = second.communicate(timeout=60)
            assert second.returncode == 75 and "lock" in err.lower()  # refused while overlapping
            assert first.poll() is None, "the runs overlapped: the first was still sending"
        finally:
            hold.set()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
    assert sorted(handler.accepted) == READERS[:20]
    assert all(len(copies) == 1 for copies in handler.accepted.values())


def test_sigkill_mid_run_then_rerun_loses_nothing(settings: Settings, tmp_path: Path,
                                                  sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS)
    handler = FaultHandler(delay=0.05)  # slow: the kill lands mid-batch
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=10)
        victim = _spawn(s, tmp_path)
        deadline = time.monotonic() + 30
        while sum(map(len, handler.accepted.values())) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        before = sum(map(len, handler.accepted.values()))
        assert 30 <= before < len(READERS)
        assert DeliveryState.SENDING in _states(sessions)  # claims the dead run left behind
        handler.delay = 0
        rerun = _spawn(s, tmp_path, "--format", "json")
        out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["reclaimed"] > 0 and report["reconciled"] > 0  # the dead run's journal
    assert set(_states(sessions)) == {DeliveryState.SENT}
    assert sorted(handler.accepted) == READERS  # every reader got the digest
    duplicates = {r: c for r, c in handler.accepted.items() if len(c) > 1}
    resent = sum(len(c) - 1 for c in duplicates.values())
    assert resent <= s.send_concurrency  # the documented bound: the messages in flight
    assert resent < before  # results were committed as the run went, not only at its end
    for rcpt in duplicates:  # a duplicate is the very same message
        assert len({handler.message(rcpt, i)["Message-ID"]
                    for i in range(len(duplicates[rcpt]))}) == 1


def test_what_is_left_counts_every_edition_of_an_hourly_run(  # type: ignore[no-untyped-def]
        invoke, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """At 17:30 UTC it is 07:30 on two dates: Kiritimati (UTC+14) and UTC-10 get editions of
    different days in one run. A deferred reader of the *older* edition is still left after
    a rerun that attempted nothing: the exit code and the summary say so."""
    at = "2026-12-06T17:30:00+00:00"
    add_articles(sessions, before=dt.datetime.fromisoformat(at))
    add_readers(sessions, ["tarziu@example.ro"], timezone="Etc/GMT+10", send_hour=7)
    add_readers(sessions, ["devreme@example.ro"], timezone="Pacific/Kiritimati", send_hour=7)
    handler = FaultHandler(script={"tarziu@example.ro": ["451 4.3.0 greylisted"]})
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port)
        code, out, _ = invoke(s, "send", "--at", at, "--format", "json")
        report = json.loads(out)
        assert code == 1 and report["sent"] == 1 and report["deferred"] == 1, out
        assert len(report["editions"]) == 2, out
        code, out, _ = invoke(s, "send", "--at", "2026-12-06T17:40:00+00:00", "--format", "json")
        report = json.loads(out)
        assert report["sent"] == report["deferred"] == 0, out  # its retry is not due yet
        assert code == 1 and report["left_deferred"] == 1, out
    assert sorted(handler.accepted) == ["devreme@example.ro"]
