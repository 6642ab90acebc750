"""The database work of a send on its own threads (``run.db_thread``), on a real database:
the gate that keeps memory bounded, claims one batch ahead, and a write that fails."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings
from digest.delivery.claims import Claim, claim
from digest.delivery.plan import ensure_edition, plan
from digest.readers.lifecycle import add_subscriber
from digest.run.claim_feeder import ClaimFeeder
from digest.run.db_thread import DbThread
from digest.run.result_writer import GATE, ResultWriter
from digest.store.models import (
    Delivery,
    DeliveryState,
    Frequency,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

CUTOFF = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)


def _claims(engine: Engine, sessions: sessionmaker[Session], n: int) -> list[Claim]:
    now = utcnow()
    with engine.begin() as conn:  # one statement: hundreds of readers in milliseconds
        conn.execute(insert(Subscriber), [
            {"email": f"cititor{i}@example.ro", "status": SubscriberStatus.ACTIVE,
             "topics": [], "frequency": "daily", "plain_text_only": False,
             "created_at": now, "updated_at": now} for i in range(n)])
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, CUTOFF.date())
        plan(conn, edition_id, Frequency.DAILY)
        return claim(conn, "w", n, claim_timeout=600)


def _states(sessions: sessionmaker[Session]) -> list[DeliveryState]:
    with sessions() as session:
        return list(session.scalars(select(Delivery.state)))


def test_results_written_on_a_thread_never_exceed_the_gate(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    claims = _claims(engine, sessions, 3 * GATE // 2)
    db = DbThread(engine, "test-ledger")
    errors: list[BaseException] = []
    ledger = ResultWriter(db, "w", errors.append)

    async def record() -> int:
        most = 0
        for c in claims:
            await ledger.room()
            most = max(most, ledger.uncommitted)
            ledger.recorder.sent(c, CUTOFF, f"<{c.delivery_id}@example.ro>", 250, "OK", [1])
        return most

    most = asyncio.run(record())
    ledger.close()
    db.close()
    assert most < GATE and errors == []
    assert _states(sessions) == [DeliveryState.SENT] * len(claims)


def test_a_failed_write_stops_the_gate_and_keeps_the_results(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    claims = _claims(engine, sessions, GATE + 10)
    db = DbThread(engine, "test-ledger")
    read_only = ("PRAGMA query_only = ON" if engine.dialect.name == "sqlite"
                 else "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    def execute(sql: str) -> object:
        def run(conn: Connection) -> None:
            conn.exec_driver_sql(sql)
        return db.submit(run).result()

    execute(read_only)  # the ledger's own connection refuses writes from now on
    errors: list[BaseException] = []
    ledger = ResultWriter(db, "w", errors.append)

    async def record() -> None:
        for c in claims:
            await ledger.room()
            ledger.recorder.skipped(c, "nothing new")

    with pytest.raises(Exception, match=r"(?i)read.?only"):
        asyncio.run(record())
    assert errors and ledger.uncommitted > 0  # nothing was dropped from memory
    # The failed connection was closed; a new one writes what was kept.
    ledger.close()
    db.close()
    recorded = ledger.recorder.counts[DeliveryState.SKIPPED]
    assert GATE <= recorded < len(claims)  # the gate stopped the rest
    assert sorted(_states(sessions)) == sorted(
        [DeliveryState.SENDING] * (len(claims) - recorded) + [DeliveryState.SKIPPED] * recorded)


def test_claims_come_one_batch_ahead_and_the_unused_one_is_handed_back(
        engine: Engine, sessions: sessionmaker[Session], settings: Settings) -> None:
    with sessions() as session:
        for i in range(25):
            add_subscriber(session, f"nou{i}@example.ro")
        session.commit()
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, CUTOFF.date())
        plan(conn, edition_id, Frequency.DAILY)
    db = DbThread(engine, "test-claims")
    feeder = ClaimFeeder(db, settings, "w", 10, None)

    async def first() -> int:
        batch = await feeder.next()
        assert batch is not None and len(batch.readers) == 10
        assert set(batch.editions) == {(edition_id, None)}  # (edition, cutoff)
        return len(batch.claims)

    assert asyncio.run(first()) == 10
    leftover = feeder.close()  # the batch claimed ahead, never handed out
    db.close()
    assert [len(batch.claims) for batch in leftover] == [10]
    assert _states(sessions).count(DeliveryState.SENDING) == 20
