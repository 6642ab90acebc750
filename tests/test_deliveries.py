"""The ledger on a real database (SQLite, or PostgreSQL with DIGEST_TEST_DATABASE_URL): set-based
planning, exclusive claims, stale and deferred rows, group-committed results."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import threading

from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.compose import ReaderView
from digest.delivery import claims, snapshots
from digest.delivery.claims import claim, due_count, reclaim_orphans, release
from digest.delivery.driver_sql import stored_time
from digest.delivery.plan import ensure_edition, plan
from digest.delivery.results import _OTHER, _SENT, MAX_ATTEMPTS, Recorder, backoff
from digest.delivery.snapshots import inactive_among, readers_for
from digest.delivery.status import status
from digest.readers.lifecycle import add_subscriber, is_suppressed
from digest.run.db_thread import INDEX_LOOKUPS
from digest.store.models import (
    Delivery,
    DeliveryState,
    Frequency,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

DAY = dt.date(2026, 11, 27)


def _subscribers(sessions: sessionmaker[Session], n: int, **kwargs: object) -> list[int]:
    with sessions() as session:
        ids = [add_subscriber(session, f"cititor{i}@example.ro", **kwargs).id  # type: ignore[arg-type]
               for i in range(n)]
        session.commit()
    return ids


def _states(sessions: sessionmaker[Session]) -> dict[int, DeliveryState]:
    with sessions() as session:
        return dict(session.execute(select(Delivery.subscriber_id, Delivery.state)).all())  # type: ignore[arg-type]


def test_plan_is_one_statement_and_idempotent(engine: Engine,
                                              sessions: sessionmaker[Session]) -> None:
    ids = _subscribers(sessions, 5)
    with sessions() as session:
        add_subscriber(session, "saptamanal@example.ro", frequency=Frequency.WEEKLY)
        add_subscriber(session, "nehotarat@example.ro", status=SubscriberStatus.PENDING)
        session.commit()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *a: statements.append(a[2]) if "INSERT" in a[2] else None)
    with engine.begin() as conn:
        edition_id, created = ensure_edition(conn, Frequency.DAILY, DAY)
        assert created
        statements.clear()
        assert plan(conn, edition_id, Frequency.DAILY) == 5
    assert len(statements) == 1 and "SELECT" in statements[0]
    # A reader who joins later is planned on the next run; nobody gets a second row.
    with sessions() as session:
        add_subscriber(session, "nou@example.ro")
        session.commit()
    with engine.begin() as conn:
        again, created = ensure_edition(conn, Frequency.DAILY, DAY)
        assert (again, created) == (edition_id, False)
        assert plan(conn, edition_id, Frequency.DAILY) == 1
        assert plan(conn, edition_id, Frequency.DAILY) == 0
    assert set(_states(sessions)) >= set(ids) and len(_states(sessions)) == 6


def test_claims_never_overlap(engine: Engine, sessions: sessionmaker[Session]) -> None:
    _subscribers(sessions, 60)
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def worker(name: str) -> None:
        while True:
            with engine.begin() as conn:
                batch = claim(conn, name, 7, claim_timeout=600)
            if not batch:
                return
            got[name].extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == 60 and len(set(everything)) == 60
    assert set(_states(sessions).values()) == {DeliveryState.SENDING}


def _claim_plan(conn: Connection, cursor_id: int, n: int) -> str:
    """The plan of the claims' pending pass from ``cursor_id`` (PostgreSQL: run, then rolled
    back, with the row counts of each step)."""
    at = stored_time(conn, utcnow())
    args = (DeliveryState.SENDING.value, at, "w", at, DeliveryState.PENDING.value, cursor_id, n)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + claims._PENDING.postgresql, args)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + claims._PENDING.sqlite, args)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())
    finally:
        cursor.close()


def test_a_claim_reads_the_pending_queue_from_its_cursor_not_every_pending_row(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The pending pass of ``claim`` runs once per batch: it must read the rows it takes, in
    id order from the cursor on. It used to read every pending row of the edition through the
    state index and sort them by id (PostgreSQL: 15,000 rows sorted for a batch of 500, 7 ms
    of the server's time per claim at 20,000 readers, linear in the edition's size)."""
    _subscribers(sessions, 120)
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":  # as on the send's connections
            conn.exec_driver_sql(INDEX_LOOKUPS)
            conn.commit()
        with conn.begin():
            first = claim(conn, "w", 20, claim_timeout=600)
        with conn.begin() as transaction:
            explained = _claim_plan(conn, first[-1].delivery_id, 10)
            transaction.rollback()
        with conn.begin():  # and the claim itself goes on from there
            then = claim(conn, "w", 10, claim_timeout=600, after_id=first[-1].delivery_id)
    assert [c.delivery_id for c in then] == list(range(first[-1].delivery_id + 1,
                                                       first[-1].delivery_id + 11))
    assert "Sort" not in explained and "TEMP B-TREE" not in explained, explained
    if engine.dialect.name == "postgresql":  # the queue's scan stopped after the ten it took
        scan = [line for line in explained.splitlines() if "ix_deliveries_pending" in line]
        assert scan and "rows=10 " in scan[0], explained
    else:  # the state index, whose entries end with the rowid: a range from the cursor on
        assert "ix_deliveries_state_next_attempt_at" in explained, explained
        assert "rowid>?" in explained, explained


def test_stale_deferred_and_released_rows_come_back(engine: Engine,
                                                    sessions: sessionmaker[Session]) -> None:
    _subscribers(sessions, 4)
    now = utcnow()
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
        first = claim(conn, "w1", 4, claim_timeout=600, now=now)
    recorder = Recorder(engine, clock=lambda: now, rng=lambda: 0.5)
    recorder.deferred(first[0], 451, "4.3.0 later")
    recorder.flush()
    with engine.begin() as conn:
        assert release(conn, [first[1].delivery_id]) == 1
        assert due_count(conn, claim_timeout=600, now=now) == 1
        # The deferred row waits for its backoff; --retry-deferred takes it at once.
        assert [c.delivery_id for c in claim(conn, "w2", 9, claim_timeout=600, now=now)] == [
            first[1].delivery_id]
        retried = claim(conn, "w2", 9, claim_timeout=600, now=now,
                        retry_deferred_before=now + dt.timedelta(seconds=1))
        assert [c.delivery_id for c in retried] == [first[0].delivery_id]
        assert retried[0].attempts == 1
        # w1's two other claims go stale after the timeout...
        later = now + dt.timedelta(seconds=601)
        assert claim(conn, "w2", 9, claim_timeout=600, now=later) == [
            c for c in first if c.delivery_id in (first[2].delivery_id, first[3].delivery_id)]
        release(conn, [first[2].delivery_id, first[3].delivery_id])
        w1 = claim(conn, "w1", 2, claim_timeout=600, now=now)  # w1 takes them again
        assert len(w1) == 2
        stale = claim(conn, "w3", 9, claim_timeout=600, now=later)
        assert {c.delivery_id for c in stale} == {first[1].delivery_id, first[2].delivery_id,
                                                 first[3].delivery_id, first[0].delivery_id}
        # ...and a run holding the lock gives every orphan back at once.
        assert reclaim_orphans(conn) == 4


def test_results_are_recorded_in_groups(engine: Engine, sessions: sessionmaker[Session]) -> None:
    ids = _subscribers(sessions, 5)
    cutoff = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
        claims = claim(conn, "w", 5, claim_timeout=600)
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    recorder = Recorder(engine, group=3)
    recorder.sent(claims[0], cutoff, "<digest.1.1@example.ro>", 250, "2.0.0 OK", [7, 8])
    recorder.failed(claims[1], 550, "5.1.1 user unknown", bounce=True)
    assert commits == []
    recorder.skipped(claims[2], "nothing new")  # the third result commits the group
    assert commits == [1]
    recorder.deferred(claims[3], 452, "4.2.2 over quota")
    recorder.release(claims[4])
    recorder.flush()
    assert len(commits) == 2
    assert _states(sessions) == {ids[0]: DeliveryState.SENT, ids[1]: DeliveryState.FAILED,
                                 ids[2]: DeliveryState.SKIPPED, ids[3]: DeliveryState.DEFERRED,
                                 ids[4]: DeliveryState.PENDING}
    with sessions() as session:
        sent = session.scalars(select(Delivery).where(Delivery.subscriber_id == ids[0])).one()
        assert (sent.message_id, sent.smtp_code, sent.article_ids) == (
            "<digest.1.1@example.ro>", 250, [7, 8])
        reader = session.get(Subscriber, ids[0])
        bounced = session.get(Subscriber, ids[1])
        assert reader is not None and bounced is not None
        assert reader.last_digest_at == cutoff  # the cutoff, not the send time
        assert bounced.status is SubscriberStatus.BOUNCED
        assert is_suppressed(session, bounced.email)
        deferred = session.scalars(select(Delivery).where(Delivery.subscriber_id == ids[3])).one()
        assert deferred.next_attempt_at is not None and deferred.attempts == 1
    assert recorder.counts[DeliveryState.SENT] == 1
    with engine.begin() as conn:
        readers, inactive = readers_for(conn, ids[:2], cutoff - dt.timedelta(days=14))
        assert readers[ids[0]].received_article_ids == frozenset({7, 8})
        assert inactive == {ids[1]}
        [row] = status(conn)
        assert row["counts"] == {"pending": 1, "sending": 0, "sent": 1, "deferred": 1,
                                 "failed": 1, "skipped": 1}


def test_backoff_doubles_with_jitter_and_gives_up(engine: Engine,
                                                  sessions: sessionmaker[Session]) -> None:
    assert backoff(1, lambda: 0.5) == dt.timedelta(minutes=2)
    assert backoff(3, lambda: 0.5) == dt.timedelta(minutes=8)
    assert backoff(30, lambda: 1.0) == dt.timedelta(hours=6) * 1.2
    assert backoff(2, lambda: 0.0) == dt.timedelta(minutes=4) * 0.8
    _subscribers(sessions, 1)
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
        [c] = claim(conn, "w", 1, claim_timeout=600)
    recorder = Recorder(engine)
    recorder.deferred(type(c)(c.delivery_id, c.edition_id, c.subscriber_id, MAX_ATTEMPTS - 1),
                      451, "4.3.0 later")
    recorder.flush()
    with sessions() as session:
        row = session.scalars(select(Delivery)).one()
        assert row.state is DeliveryState.FAILED and "gave up after 8" in (row.smtp_reply or "")


def test_the_fast_result_writes_store_what_sqlalchemy_would(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """SQLite and PostgreSQL write results with their own plain statements (executemany of
    stored values; unnest arrays): each row must come out exactly as the generic statements
    (SQLAlchemy's type processing) store it, down to the stored text of every timestamp."""
    _subscribers(sessions, 6)
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
        claims = claim(conn, "w", 6, claim_timeout=600)
    at = dt.datetime(2026, 11, 27, 6, 30, 0, 0, tzinfo=dt.UTC)  # no microseconds: still stored
    fast, generic = (Recorder(engine, clock=functools.partial(next, itertools.cycle(
        [at, at + dt.timedelta(microseconds=7), at + dt.timedelta(hours=3)])),
        rng=lambda: 0.5) for _ in range(2))
    for recorder, (one, two, three) in ((fast, claims[:3]), (generic, claims[3:])):
        recorder.sent(one, at, "<digest.1.1@example.ro>", 250, "2.0.0 OK", [3, 1])
        recorder.deferred(two, 451, "4.3.0 try later")
        recorder.failed(three, 550, "5.7.1 rejected: policy")
    with engine.begin() as conn:
        fast.take().write(conn)
        rows = generic.take()
        conn.execute(_SENT, rows.sent)
        conn.execute(_OTHER, rows.other)
    columns = "state, attempts, sent_at, next_attempt_at, updated_at, message_id, smtp_code, " \
              "smtp_reply, claimed_by, article_ids"
    with engine.connect() as conn:
        stored = [tuple(str(v) for v in row) for row in conn.exec_driver_sql(
            f"SELECT {columns} FROM deliveries ORDER BY id")]
    assert stored[:3] == stored[3:]
    assert stored[0][0] == "sent" and stored[1][0] == "deferred" and stored[2][0] == "failed"


def test_the_status_check_during_a_send_looks_readers_up_by_key(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """``inactive_among`` runs several times a second during a send: on a table the planner
    knows nothing about (a fresh import), it must still be primary-key lookups, never a walk
    of every active reader (88 ms per call at 20,000 readers on PostgreSQL)."""
    ids = _subscribers(sessions, 50)
    with sessions.begin() as session:
        session.get(Subscriber, ids[3]).status = SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    plans: list[str] = []
    with engine.connect() as conn:
        assert inactive_among(conn, ids[:10]) == {ids[3]}
        # The statement it runs (at the driver level, delivery.driver_sql), explained.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        chunk = ",".join(map(str, ids[:10]))
        if engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN " + snapshots._STATUS.postgresql, (f"{{{chunk}}}",))
        else:
            cursor.execute("EXPLAIN QUERY PLAN "
                           + snapshots._STATUS.sqlite.replace("{ids}", f"IN ({chunk})"))
        plans.append(" ".join(str(row[-1]) for row in cursor.fetchall()))
        cursor.close()
    # Nothing about the status in the plan: neither its index nor a filter on it (SQLite:
    # rowid lookups; PostgreSQL: the key, or a scan of this tiny table).
    assert plans and all("status" not in plan for plan in plans), plans
    if engine.dialect.name == "sqlite":
        assert all("INTEGER PRIMARY KEY" in plan for plan in plans), plans


def _readers_through_sqlalchemy(conn: Connection, ids: list[int], since: dt.datetime
                                ) -> tuple[dict[int, ReaderView], set[int]]:
    """The reference for ``readers_for``: the same reads through SQLAlchemy's types."""
    d, s = Delivery.__table__, Subscriber.__table__
    received: dict[int, set[int]] = {}
    for sid, article_ids in conn.execute(select(d.c.subscriber_id, d.c.article_ids).where(
            d.c.subscriber_id.in_(ids), d.c.sent_at > since)):
        received.setdefault(sid, set()).update(article_ids)
    readers, inactive = {}, set()
    for row in conn.execute(select(s).where(s.c.id.in_(ids))):
        if row.status is not SubscriberStatus.ACTIVE:
            inactive.add(row.id)
        readers[row.id] = ReaderView(
            row.id, row.email, row.name, frozenset(row.topics or ()), row.frequency,
            row.plain_text_only, row.last_digest_at, frozenset(received.get(row.id, ())),
            row.locale)
    return readers, inactive


def test_the_driver_level_reads_and_claims_give_what_sqlalchemy_would(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """A send reads its readers and claims its rows at the driver level
    (``delivery.driver_sql``): the views and claims must be the ones SQLAlchemy's column types
    give -- topics, enums, booleans, aware UTC times (with and without microseconds), history
    -- and a batch is one statement whatever its length."""
    with sessions() as session:
        ids = [add_subscriber(session, f"cititor{i}@example.ro", name=["Ana Ș.", None][i % 2],
                              topics=[(), ("sport",), ("local", "sport")][i % 3],
                              frequency=Frequency.WEEKLY if i % 4 == 3 else Frequency.DAILY,
                              locale=[None, "ro", "en-GB"][i % 3],
                              status=[SubscriberStatus.ACTIVE, SubscriberStatus.ACTIVE,
                                      SubscriberStatus.UNSUBSCRIBED][i % 3]).id
               for i in range(12)]
        for i, sid in enumerate(ids):
            reader = session.get(Subscriber, sid)
            assert reader is not None
            reader.plain_text_only = i % 4 == 0
            reader.last_digest_at = [None, dt.datetime(2026, 11, 20, 5, tzinfo=dt.UTC),
                                     dt.datetime(2026, 11, 26, 5, 0, 0, 123456, tzinfo=dt.UTC)
                                     ][i % 3]
        session.commit()
    with engine.begin() as conn:
        edition_id, _ = ensure_edition(conn, Frequency.DAILY, DAY)
        plan(conn, edition_id, Frequency.DAILY)
        reference = conn.execute(select(Delivery.id, Delivery.edition_id, Delivery.subscriber_id,
                                        Delivery.attempts, Delivery.cutoff)
                                 .order_by(Delivery.id)).all()
        claims = claim(conn, "w", 5, claim_timeout=600)
        claims += claim(conn, "w", 100, claim_timeout=600, after_id=claims[-1].delivery_id)
        assert [tuple(r) for r in reference] == [
            (c.delivery_id, c.edition_id, c.subscriber_id, c.attempts, c.cutoff) for c in claims]
        assert conn.scalar(select(func.count()).where(
            Delivery.state == DeliveryState.SENDING, Delivery.claimed_by == "w")) == len(claims)
        assert len(claims) >= 5
        cutoff = dt.datetime(2026, 11, 27, 5, tzinfo=dt.UTC)
        recorder = Recorder(engine)
        for c, article_ids in zip(claims[:4], ([1, 2], [3], [], [2, 9]), strict=True):
            recorder.sent(c, cutoff, f"<{c.delivery_id}@example.ro>", 250, "OK", article_ids)
        recorder.take().write(conn)
        since = cutoff - dt.timedelta(days=14)
        got = readers_for(conn, ids, since)
        assert got == _readers_through_sqlalchemy(conn, ids, since)
        assert got[0][ids[0]].received_article_ids == frozenset({1, 2})
        assert got[0][ids[1]].last_digest_at == cutoff  # moved by the sent result
        assert got[0][ids[2]].last_digest_at is not None
        assert got[0][ids[2]].last_digest_at.tzinfo is dt.UTC
        assert inactive_among(conn, ids) == got[1] == {ids[2], ids[5], ids[8], ids[11]}
