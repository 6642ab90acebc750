"""Record delivery results in small group commits (see ``digest.deliveries`` for the bound).

The pipeline reports each result as it comes in; the ``Recorder`` buffers them and writes one
transaction per ``GROUP_COMMIT`` results (or whenever ``flush`` is called, e.g. on a timer):
``executemany`` UPDATEs by primary key, no ORM objects on this hot path. A ``sent`` result also
moves the reader's ``last_digest_at`` to the edition's *cutoff* (not the send time): articles
published between the cutoff and the send belong to the next edition, so none is skipped.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, or_, update
from sqlalchemy.orm import Session

from digest.deliveries import GROUP_COMMIT, Claim
from digest.models import Delivery, DeliveryState, Subscriber, utcnow
from digest.subscribers import mark_bounced

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "MAX_ATTEMPTS", "Recorder", "backoff"]

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


@dataclass
class Recorder:
    engine: Engine
    group: int = GROUP_COMMIT
    clock: Callable[[], dt.datetime] = utcnow
    rng: Callable[[], float] = random.random
    counts: Counter[DeliveryState] = field(default_factory=Counter)
    _sent: list[dict[str, Any]] = field(default_factory=list)
    _last: dict[dt.datetime, list[int]] = field(default_factory=dict)  # cutoff -> readers
    _other: list[dict[str, Any]] = field(default_factory=list)
    _bounces: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._sent) + len(self._other)

    def sent(self, claim: Claim, cutoff: dt.datetime, message_id: str, code: int | None,
             reply: str, article_ids: Sequence[int]) -> None:
        self._sent.append({"b_id": claim.delivery_id, "b_at": self.clock(),
                           "b_message_id": message_id, "b_code": code, "b_reply": reply,
                           "b_articles": list(article_ids)})
        self._last.setdefault(cutoff, []).append(claim.subscriber_id)
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
        self._row(claim, DeliveryState.FAILED, claim.attempts + 1, code, reply)
        if bounce:
            self._bounces.append((claim.subscriber_id, f"{code} {reply}"))

    def skipped(self, claim: Claim, reason: str) -> None:
        self._row(claim, DeliveryState.SKIPPED, claim.attempts, None, reason)

    def release(self, claim: Claim, code: int | None = None, reply: str | None = None) -> None:
        """Back to ``pending``, untouched but for the reply that made us stop (if any)."""
        self._row(claim, DeliveryState.PENDING, claim.attempts, code, reply, claimed=False)

    def _row(self, claim: Claim, state: DeliveryState, attempts: int, code: int | None,
             reply: str | None, next_at: dt.datetime | None = None, claimed: bool = True
             ) -> None:
        self._other.append({"b_id": claim.delivery_id, "b_state": state, "b_attempts": attempts,
                            "b_next": next_at, "b_code": code, "b_reply": reply,
                            "b_claimed_by": None, "b_at": self.clock()})
        if not claimed:
            self.counts[state] += 1  # released: counted, but not a result to commit soon
            return
        self._count(state)

    def _count(self, state: DeliveryState) -> None:
        self.counts[state] += 1
        if len(self) >= self.group:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered in one transaction."""
        if not len(self):
            return
        with self.engine.begin() as conn:
            if self._sent:
                conn.execute(_SENT, self._sent)
                for cutoff, readers in self._last.items():  # one statement per edition
                    conn.execute(update(S).where(S.c.id.in_(readers),
                                                 or_(S.c.last_digest_at.is_(None),
                                                     S.c.last_digest_at < cutoff))
                                 .values(last_digest_at=cutoff))
            if self._other:
                conn.execute(_OTHER, self._other)
            if self._bounces:
                with Session(bind=conn) as session:
                    for subscriber_id, reply in self._bounces:
                        subscriber = session.get(Subscriber, subscriber_id)
                        if subscriber is not None:
                            mark_bounced(session, subscriber, reply)
                    session.flush()
        self._sent.clear()
        self._last.clear()
        self._other.clear()
        self._bounces.clear()
