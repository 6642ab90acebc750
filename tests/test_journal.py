"""The reply journal (``run.journal``) on a real database: a dead sender's replies reach the
ledger at the next start, once; a live sender's journal is left alone; a line cut short by the
crash is ignored; segments the ledger has caught up with are deleted."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from digest.delivery.claims import Claim, claim
from digest.delivery.plan import ensure_edition, plan
from digest.readers.lifecycle import add_subscriber
from digest.run import journal as journal_module
from digest.run.journal import Journal, reconcile
from digest.store.models import Delivery, DeliveryState, Frequency, Subscriber, SubscriberStatus
from digest.transport.replies import Outcome, Reply

CUTOFF = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
SENT = Reply(Outcome.SENT, 250, "2.0.0 OK queued")


def _claimed(engine: Engine, sessions: sessionmaker[Session], worker: str, n: int
             ) -> list[Claim]:
    with sessions() as session:
        for i in range(n):
            add_subscriber(session, f"cititor{i}@example.ro")
        session.commit()
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, CUTOFF.date())
        plan(conn, edition_id, Frequency.DAILY)
        return claim(conn, worker, n, claim_timeout=600)


def _rows(sessions: sessionmaker[Session]) -> dict[int, Delivery]:
    with sessions() as session:
        return {d.id: d for d in session.scalars(select(Delivery))}


def test_a_dead_senders_replies_reach_the_ledger_once(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    worker = "host:123:abcd"
    sent, later, gone, unknown = _claimed(engine, sessions, worker, 4)
    journal = Journal(tmp_path, worker)
    journal.write(sent, SENT, CUTOFF, "<digest.1.1@example.ro>", [7, 8])
    journal.write(later, Reply(Outcome.DEFERRED, 451, "4.3.0 try later"), CUTOFF, "<x>", [])
    journal.write(gone, Reply(Outcome.FAILED_ADDRESS, 550, "5.1.1 no such user"), CUTOFF,
                  "<y>", [])
    kept = sorted(tmp_path.glob("*.jsonl"))
    journal.close(remove=False)  # the process died: its lock is gone, its lines are not
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in kept:
        shutil.copy(path, copy / path.name)

    assert reconcile(engine, tmp_path) == 3
    rows = _rows(sessions)
    assert rows[sent.delivery_id].state is DeliveryState.SENT
    assert rows[sent.delivery_id].message_id == "<digest.1.1@example.ro>"
    assert rows[sent.delivery_id].article_ids == [7, 8]
    assert rows[later.delivery_id].state is DeliveryState.DEFERRED
    assert rows[gone.delivery_id].state is DeliveryState.FAILED
    assert rows[unknown.delivery_id].state is DeliveryState.SENDING  # never journaled: resent
    with sessions() as session:
        reader = session.get(Subscriber, gone.subscriber_id)
        assert reader is not None and reader.status is SubscriberStatus.BOUNCED
        sent_reader = session.get(Subscriber, sent.subscriber_id)
        assert sent_reader is not None and sent_reader.last_digest_at is not None
    assert not list(tmp_path.glob("*.jsonl")) and not list(tmp_path.glob("*.lock"))
    assert reconcile(engine, tmp_path) == 0

    # The same journal again (say, restored from a backup): nothing changes a second time.
    for path in copy.iterdir():
        shutil.move(str(path), tmp_path / path.name)
    (tmp_path / f"{kept[0].name.split('.')[0]}.lock").write_text(worker)
    assert reconcile(engine, tmp_path) == 0
    assert _rows(sessions)[later.delivery_id].attempts == 1


def test_a_live_senders_journal_is_left_alone_and_a_cut_line_ignored(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _claimed(engine, sessions, "live", 2)
    live = Journal(tmp_path, "live")
    live.write(first, SENT, CUTOFF, "<a@example.ro>", [1])
    assert reconcile(engine, tmp_path) == 0  # its sender holds the lock
    with (tmp_path / "live.1.jsonl").open("ab") as file:
        file.write(b'[%d,1,2,0,"sent",250,"OK"' % second.delivery_id)  # killed mid-write
    live.close(remove=False)
    assert reconcile(engine, tmp_path) == 1
    rows = _rows(sessions)
    assert rows[first.delivery_id].state is DeliveryState.SENT
    assert rows[second.delivery_id].state is DeliveryState.SENDING


def test_a_killed_senders_mapped_segment_is_read_up_to_its_last_line(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """A SIGKILL leaves the segment as mapped: allocated to its full size, zeroed after the
    last line. That tail is no reply; the lines before it are applied."""
    first, second = _claimed(engine, sessions, "dead", 2)
    journal = Journal(tmp_path, "dead")
    journal.write(first, SENT, CUTOFF, "<a@example.ro>", [1])
    segment = tmp_path / "dead.1.jsonl"
    assert segment.stat().st_size == journal_module.SEGMENT_BYTES  # not closed: not trimmed
    assert segment.read_bytes().rstrip(b"\0").endswith(b"]\n")
    os.close(journal._lock)  # what the kernel does for a killed process: its flock goes
    assert reconcile(engine, tmp_path) == 1
    rows = _rows(sessions)
    assert rows[first.delivery_id].state is DeliveryState.SENT
    assert rows[second.delivery_id].state is DeliveryState.SENDING  # in flight: sent again
    assert not segment.exists()


def test_segments_go_once_the_ledger_has_them(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 40)  # one line per segment
    claims = _claimed(engine, sessions, "w", 5)
    tmp_path = tmp_path / "journal"
    journal = Journal(tmp_path, "w")
    for c in claims:
        journal.write(c, SENT, CUTOFF, f"<{c.delivery_id}@example.ro>", [1])
    assert len(list(tmp_path.glob("*.jsonl"))) >= 5
    journal.committed(3)  # replies 1-3 are in the ledger: their segments go
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["w.4.jsonl", "w.5.jsonl",
                                                                "w.6.jsonl"]
    journal.close(remove=True)
    assert not list(tmp_path.iterdir())
