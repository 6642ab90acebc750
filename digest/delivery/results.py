"""Record delivery results in group commits.

**In-flight bound.** A send journals every reply before the next message leaves its
connection (``run.journal``), and the next start reconciles a dead sender's journal into the
ledger before anything is reclaimed: so a crash (even SIGKILL) resends at most the messages
whose reply was never read, one per connection (``DIGEST_SEND_CONCURRENCY``). The group commits
below therefore no longer set that bound; they keep the ledger current and the memory flat.
Nothing is lost: unrecorded rows stay ``sending`` and are claimed again. A resent copy has the
same Message-ID, so most mailbox providers fold it away.

The pipeline reports each result as it comes in; the ``Recorder`` buffers them and writes one
transaction per ``GROUP_COMMIT`` results (or whenever ``flush`` is called, e.g. on a timer):
``executemany`` UPDATEs by primary key, no ORM objects on this hot path. A ``sent`` result also
moves the reader's ``last_digest_at`` to the edition's *cutoff* (not the send time): articles
published between the cutoff and the send belong to the next edition, so none is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, text, update
from sqlalchemy.orm import Session

from digest.delivery.claims import Claim
from digest.delivery.driver_sql import IdQuery, driver_update, stored_text, stored_time
from digest.readers.lifecycle import mark_bounced
from digest.store.models import Delivery, DeliveryState, Subscriber, utcnow

GROUP_COMMIT = 2000  # results per commit (the journal, not this, bounds a crash's resends)

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "GROUP_COMMIT", "MAX_ATTEMPTS", "Recorder", "Results",
           "backoff"]

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)

MAX_ATTEMPTS = 8  # a delivery deferred this many times is given up as failed
BACKOFF_BASE = dt.timedelta(minutes=2)
BACKOFF_CAP = dt.timedelta(hours=6)


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> dt.timedelta:
    """Delay before retry number ``attempts``: doubling from 2 min, capped at 6 h, with +-20 %
    jitter so that thousands of deferred readers do not come back in the same second."""
    doubled: dt.timedelta = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(doubled, BACKOFF_CAP) * (0.8 + 0.4 * rng())


_SENT = (update(D).where(D.c.id == bindparam("b_id"))
         .values(state=DeliveryState.SENT, sent_at=bindparam("b_at"),
                 message_id=bindparam("b_message_id"), smtp_code=bindparam("b_code"),
                 smtp_reply=bindparam("b_reply"), article_ids=bindparam("b_articles"),
                 attempts=D.c.attempts + 1, next_attempt_at=None, updated_at=bindparam("b_at")))
_OTHER = (update(D).where(D.c.id == bindparam("b_id"))
          .values(state=bindparam("b_state"), attempts=bindparam("b_attempts"),
                  next_attempt_at=bindparam("b_next"), smtp_code=bindparam("b_code"),
                  smtp_reply=bindparam("b_reply"), claimed_by=bindparam("b_claimed_by"),
                  updated_at=bindparam("b_at")))

# PostgreSQL: one UPDATE ... FROM the rows per kind of result, sent as ONE JSON document (made
# by the C encoder): an executemany waited for one reply per row, and arrays were dumped item
# by item in Python on the ledger thread, holding the interpreter lock the send loop needs.
# Read as jsonb: parsed once, where each ``->>`` of a ``json`` value parses its text again
# (the join of a group of 500 results: 4.1 -> 1.8 ms of the server's time, EXPLAIN ANALYZE).
_NAIVE = "timestamp"  # UTCDateTime stores naive UTC
_SENT_PG = text(f"""
UPDATE {D.name} AS d SET state = :state, sent_at = v.at, message_id = v.mid, smtp_code = v.code,
    smtp_reply = v.reply, article_ids = v.articles::json, attempts = d.attempts + 1,
    next_attempt_at = NULL, updated_at = v.at
FROM (SELECT (r->>0)::integer AS id, (r->>1)::{_NAIVE} AS at, r->>2 AS mid,
             (r->>3)::integer AS code, r->>4 AS reply, r->5 AS articles
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r) AS v
WHERE d.id = v.id""")
_OTHER_PG = text(f"""
UPDATE {D.name} AS d SET state = v.state, attempts = v.attempts, next_attempt_at = v.next,
    smtp_code = v.code, smtp_reply = v.reply, claimed_by = NULL, updated_at = v.at
FROM (SELECT (r->>0)::integer AS id, r->>1 AS state, (r->>2)::integer AS attempts,
             (r->>3)::{_NAIVE} AS next, (r->>4)::integer AS code, r->>5 AS reply,
             (r->>6)::{_NAIVE} AS at
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r) AS v
WHERE d.id = v.id""")

# SQLite: the same UPDATEs as plain executemany with values already in stored form -- the
# DBAPI's own loop in C, without SQLAlchemy's per-value processing (three quarters of the
# write's time, measured). The stored forms are UTCDateTime's (naive UTC, as SQLAlchemy's
# SQLite DATETIME writes it), the enum's value and JSON's ``json.dumps``.
_SENT_SQLITE = (f"UPDATE {D.name} SET state = ?, sent_at = ?, message_id = ?, smtp_code = ?, "
                "smtp_reply = ?, article_ids = ?, attempts = attempts + 1, "
                "next_attempt_at = NULL, updated_at = ? WHERE id = ?")
_OTHER_SQLITE = (f"UPDATE {D.name} SET state = ?, attempts = ?, next_attempt_at = ?, "
                 "smtp_code = ?, smtp_reply = ?, claimed_by = NULL, updated_at = ? WHERE id = ?")


# A sent result moves the reader's last digest time to the edition's cutoff, never back.
_LAST_DIGEST = IdQuery(f"UPDATE {S.name} SET last_digest_at = {{p}} WHERE id {{ids}} "
                       "AND (last_digest_at IS NULL OR last_digest_at < {p})")


def _write_sqlite(conn: Connection, sent: list[dict[str, Any]],
                  other: list[dict[str, Any]]) -> None:
    state = DeliveryState.SENT.value
    if sent:
        lists: dict[tuple[int, ...], str] = {}  # readers of a digest share its article list
        conn.exec_driver_sql(_SENT_SQLITE, [
            (state, at, r["b_message_id"], r["b_code"], r["b_reply"],
             lists.get(ids) or lists.setdefault(ids, json.dumps(ids)), at, r["b_id"])
            for r in sent for at, ids in ((stored_text(r["b_at"]), r["b_articles"]),)])
    if other:
        conn.exec_driver_sql(_OTHER_SQLITE, [
            (r["b_state"].value, r["b_attempts"], stored_text(r["b_next"]), r["b_code"],
             r["b_reply"], stored_text(r["b_at"]), r["b_id"]) for r in other])


def _write_pg(conn: Connection, sent: list[dict[str, Any]], other: list[dict[str, Any]]) -> None:
    if sent:
        conn.execute(_SENT_PG, {"state": DeliveryState.SENT.value, "rows": json.dumps([
            (r["b_id"], stored_text(r["b_at"]), r["b_message_id"], r["b_code"], r["b_reply"],
             r["b_articles"]) for r in sent])})
    if other:
        conn.execute(_OTHER_PG, {"rows": json.dumps([
            (r["b_id"], r["b_state"].value, r["b_attempts"], stored_text(r["b_next"]), r["b_code"],
             r["b_reply"], stored_text(r["b_at"])) for r in other])})


@dataclass
class Results:
    """Buffered results, taken out of a ``Recorder`` to be written in one transaction."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    last: dict[dt.datetime, list[int]] = field(default_factory=dict)  # cutoff -> readers
    other: list[dict[str, Any]] = field(default_factory=list)
    bounces: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.other)

    def extend(self, more: Results) -> None:
        self.sent += more.sent
        for cutoff, readers in more.last.items():
            self.last.setdefault(cutoff, []).extend(readers)
        self.other += more.other
        self.bounces += more.bounces

    def write(self, conn: Connection) -> None:
        """Write them all on ``conn`` (the caller's transaction): ``executemany`` UPDATEs,
        or on PostgreSQL one UPDATE per kind of result."""
        dialect = conn.dialect.name
        if dialect == "postgresql":
            _write_pg(conn, self.sent, self.other)
        elif dialect == "sqlite":
            _write_sqlite(conn, self.sent, self.other)
        elif self.sent:
            conn.execute(_SENT, self.sent)
        if self.sent:
            for cutoff, readers in self.last.items():  # one statement per edition
                at = stored_time(conn, cutoff)
                driver_update(conn, _LAST_DIGEST, readers, at, at)
        if self.other and dialect not in ("postgresql", "sqlite"):
            conn.execute(_OTHER, self.other)
        if self.bounces:
            with Session(bind=conn) as session:
                for subscriber_id, reply in self.bounces:
                    subscriber = session.get(Subscriber, subscriber_id)
                    if subscriber is not None:
                        mark_bounced(session, subscriber, reply)
                session.flush()


@dataclass
class Recorder:
    """Buffers results; every ``group`` of them is written (``flush``), or handed to
    ``on_full`` when set, which then writes them elsewhere (see ``run.db_thread``)."""

    engine: Engine
    group: int = GROUP_COMMIT
    clock: Callable[[], dt.datetime] = utcnow
    rng: Callable[[], float] = random.random
    on_full: Callable[[], None] | None = None
    counts: Counter[DeliveryState] = field(default_factory=Counter)
    _buffer: Results = field(default_factory=Results)

    def __len__(self) -> int:
        return len(self._buffer)

    def sent(self, claim: Claim, cutoff: dt.datetime, message_id: str, code: int | None,
             reply: str, article_ids: Sequence[int]) -> None:
        self._buffer.sent.append({"b_id": claim.delivery_id, "b_at": self.clock(),
                                  "b_message_id": message_id, "b_code": code, "b_reply": reply,
                                  "b_articles": tuple(article_ids)})
        self._buffer.last.setdefault(cutoff, []).append(claim.subscriber_id)
        self._count(DeliveryState.SENT)

    def deferred(self, claim: Claim, code: int | None, reply: str) -> None:
        attempts = claim.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self._row(claim, DeliveryState.FAILED, attempts, code,
                      f"gave up after {attempts} attempts; last reply: {reply}")
            return
        self._row(claim, DeliveryState.DEFERRED, attempts, code, reply,
                  self.clock() + backoff(attempts, self.rng))

    def failed(self, claim: Claim, code: int | None, reply: str, *, bounce: bool = False) -> None:
        if bounce:  # before the row: a group written at once must carry the bounce too
            self._buffer.bounces.append((claim.subscriber_id, f"{code} {reply}"))
        self._row(claim, DeliveryState.FAILED, claim.attempts + 1, code, reply)

    def skipped(self, claim: Claim, reason: str) -> None:
        self._row(claim, DeliveryState.SKIPPED, claim.attempts, None, reason)

    def release(self, claim: Claim, code: int | None = None, reply: str | None = None) -> None:
        """Back to ``pending``, untouched but for the reply that made us stop (if any)."""
        self._row(claim, DeliveryState.PENDING, claim.attempts, code, reply, claimed=False)

    def _row(self, claim: Claim, state: DeliveryState, attempts: int, code: int | None,
             reply: str | None, next_at: dt.datetime | None = None, claimed: bool = True
             ) -> None:
        self._buffer.other.append({"b_id": claim.delivery_id, "b_state": state,
                                   "b_attempts": attempts, "b_next": next_at, "b_code": code,
                                   "b_reply": reply, "b_claimed_by": None, "b_at": self.clock()})
        if not claimed:
            self.counts[state] += 1  # released: counted, but not a result to commit soon
            return
        self._count(state)

    def _count(self, state: DeliveryState) -> None:
        self.counts[state] += 1
        if len(self) >= self.group:
            if self.on_full is not None:
                self.on_full()
            else:
                self.flush()

    def take(self) -> Results:
        """Everything buffered, leaving the buffer empty."""
        taken, self._buffer = self._buffer, Results()
        return taken

    def put_back(self, results: Results) -> None:
        """Results whose write failed: kept, to be written by the next flush."""
        results.extend(self._buffer)
        self._buffer = results

    def flush(self) -> None:
        """Write everything buffered in one transaction."""
        if len(self):
            taken = self.take()
            try:
                with self.engine.begin() as conn:
                    taken.write(conn)
            except BaseException:
                self.put_back(taken)
                raise
