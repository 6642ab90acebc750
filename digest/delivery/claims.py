"""Claim due deliveries for a sender, keep the claims fresh, give them back.

- ``claim`` moves up to ``n`` due rows to ``sending`` (claim time and claimant recorded) in one
  ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) RETURNING``. On PostgreSQL
  concurrent senders skip each other's rows; on SQLite the statement runs under the database's
  write lock (and the run lock), so two claims never overlap either.
- Due means: ``pending``; ``deferred`` whose ``next_attempt_at`` has come (with
  ``--retry-deferred``: any row deferred before the run began); ``sending`` whose claim is older
  than ``DIGEST_CLAIM_TIMEOUT`` and not the claimant's own (a crashed sender's rows). A live
  sender refreshes its claims (``heartbeat``) well within the timeout, so no other process
  (``digest send --join`` on another machine, say) ever takes a claim that is still being
  worked on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, func, or_, select, update

from digest.delivery.driver_sql import IdQuery, aware_utc, driver_query, stored_time
from digest.store.models import Delivery, DeliveryState, utcnow

__all__ = ["Claim", "claim", "due_count", "heartbeat", "reclaim_orphans", "release"]

D = cast(Table, Delivery.__table__)


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: int
    edition_id: int
    subscriber_id: int
    attempts: int
    cutoff: dt.datetime | None = None  # the delivery's own cutoff; None: the edition's

    @property
    def edition_key(self) -> tuple[int, dt.datetime | None]:
        """What composing depends on besides the reader: the edition and the cutoff."""
        return self.edition_id, self.cutoff


def _retry(now: dt.datetime, stale_before: dt.datetime,
           retry_deferred_before: dt.datetime | None, worker: str | None = None) -> Any:
    """Due rows other than pending ones: deferred whose time has come, and stale claims."""
    deferred = and_(D.c.state == DeliveryState.DEFERRED, D.c.next_attempt_at <= now)
    if retry_deferred_before is not None:  # --retry-deferred: whatever the backoff, but only
        # rows deferred before this run began, so that a run never loops on one bad reply
        deferred = or_(deferred, and_(D.c.state == DeliveryState.DEFERRED,
                                      D.c.updated_at < retry_deferred_before))
    stale = and_(D.c.state == DeliveryState.SENDING, D.c.claimed_at < stale_before)
    if worker is not None:  # never our own claims: they are queued, not abandoned
        stale = and_(stale, or_(D.c.claimed_by.is_(None), D.c.claimed_by != worker))
    # A pending row with a retry time (set by hand, say) is still pending: never stuck.
    odd = and_(D.c.state == DeliveryState.PENDING, D.c.next_attempt_at.is_not(None))
    return or_(deferred, stale, odd)


def _take(conn: Connection, worker: str, n: int, where: Any, now: dt.datetime) -> list[Claim]:
    chosen = (select(D.c.id).where(where).order_by(D.c.id).limit(n)
              .with_for_update(skip_locked=True))
    statement = (update(D).where(D.c.id.in_(chosen.scalar_subquery()))
                 .values(state=DeliveryState.SENDING, claimed_at=now, claimed_by=worker,
                         updated_at=now)
                 .returning(D.c.id, D.c.edition_id, D.c.subscriber_id, D.c.attempts,
                            D.c.cutoff))
    return [Claim(*row) for row in conn.execute(statement)]


# The pending pass, several times a second during a send: at the driver level
# (``delivery.driver_sql``), without SQLAlchemy's compiling and row processing per batch.
_PENDING = IdQuery(f"""
UPDATE {D.name} SET state = {{p}}, claimed_at = {{p}}, claimed_by = {{p}}, updated_at = {{p}}
WHERE id IN (SELECT id FROM {D.name}
             WHERE state = {{p}} AND next_attempt_at IS NULL AND id > {{p}}
             ORDER BY id LIMIT {{p}} {{lock}})
RETURNING id, edition_id, subscriber_id, attempts, cutoff""")


def _take_pending(conn: Connection, worker: str, n: int, after_id: int, now: dt.datetime
                  ) -> list[Claim]:
    at = stored_time(conn, now)
    rows = driver_query(conn, _PENDING, DeliveryState.SENDING.value, at, worker, at,
                        DeliveryState.PENDING.value, after_id, n)
    return [Claim(delivery_id, edition_id, subscriber_id, attempts, aware_utc(cutoff))
            for delivery_id, edition_id, subscriber_id, attempts, cutoff in rows]


def claim(conn: Connection, worker: str, n: int, *, claim_timeout: float,
          retry_deferred_before: dt.datetime | None = None, after_id: int = 0,
          now: dt.datetime | None = None) -> list[Claim]:
    """Claim up to ``n`` due deliveries for ``worker``: pending ones first, oldest first.

    ``after_id`` is the caller's cursor (the highest id it claimed): pending rows below it were
    all claimed already, so the scan starts there instead of walking past every row sent so far
    (which made each claim slower as a big edition progressed).
    """
    now = now or utcnow()
    stale_before = now - dt.timedelta(seconds=claim_timeout)
    # Pending rows in id order from the cursor on: no sort, no scan of the rows already done
    # nor of the pending rows after this batch. PostgreSQL reads its partial index of the
    # pending rows (``ix_deliveries_pending``); SQLite its (state, next_attempt_at) index,
    # whose entries end with the rowid. (Before the partial index, PostgreSQL read every
    # pending row through the state index and sorted them: linear in the edition's size.)
    taken = _take_pending(conn, worker, n, after_id, now)
    if len(taken) < n:
        taken += _take(conn, worker, n - len(taken),
                       _retry(now, stale_before, retry_deferred_before, worker), now)
    return sorted(taken, key=lambda c: c.delivery_id)


def due_count(conn: Connection, *, claim_timeout: float,
              retry_deferred_before: dt.datetime | None = None,
              now: dt.datetime | None = None) -> int:
    """How many rows ``claim`` would hand out now (for the progress bar).

    One count per state, summed: one count of the whole ``OR`` made SQLite gather the row ids
    of every match in memory to merge its index scans (+23 MB of peak RSS at 1,000,000
    pending deliveries, ``bench/send.py --kinds pipelined``)."""
    now = now or utcnow()
    stale_before = now - dt.timedelta(seconds=claim_timeout)
    retry = _retry(now, stale_before, retry_deferred_before)
    total = 0
    for state in (DeliveryState.PENDING, DeliveryState.DEFERRED, DeliveryState.SENDING):
        where = D.c.state == state if state is DeliveryState.PENDING else and_(
            D.c.state == state, retry)
        total += conn.scalar(select(func.count()).select_from(D).where(where)) or 0
    return total


def reclaim_orphans(conn: Connection) -> int:
    """Give back, at once, the ``sending`` rows of claimants that are gone; for the planner,
    which holds the run lock, at its start.

    On SQLite that is every ``sending`` row: the run lock admits one sender and ``--join`` is
    refused, so any such row was left by a run that crashed. On PostgreSQL ``digest send
    --join`` processes may be sending right now, so a row is taken back only when its claimant
    no longer holds its presence lock (``delivery.presence``): its connection has ended. Trying
    the key with a *transaction* lock fails while the owner lives and, when it succeeds, is
    released by this commit. Rows of a claimant that is alive stay its own; rows of one that
    vanished without closing its connection come back through the claim timeout instead.
    """
    dead = D.c.state == DeliveryState.SENDING
    if conn.dialect.name == "postgresql":
        dead = and_(dead, or_(D.c.claimed_by.is_(None), func.pg_try_advisory_xact_lock(
            func.hashtextextended(D.c.claimed_by, 0))))
    return conn.execute(update(D).where(dead)
                        .values(state=DeliveryState.PENDING, claimed_by=None,
                                claimed_at=None, next_attempt_at=None)).rowcount


def heartbeat(conn: Connection, worker: str, now: dt.datetime | None = None) -> int:
    """Refresh the claim time of ``worker``'s rows still ``sending``: a live sender's claims
    never go stale, however long its batch takes; a dead one's do after the claim timeout."""
    return conn.execute(update(D).where(D.c.state == DeliveryState.SENDING,
                                        D.c.claimed_by == worker)
                        .values(claimed_at=now or utcnow())).rowcount


def release(conn: Connection, delivery_ids: Sequence[int]) -> int:
    """Return claimed, unattempted deliveries to ``pending`` (after an abort or an interrupt)."""
    total = 0
    for start in range(0, len(delivery_ids), 500):
        chunk = list(delivery_ids[start:start + 500])
        total += conn.execute(update(D).where(D.c.id.in_(chunk),
                                              D.c.state == DeliveryState.SENDING)
                              .values(state=DeliveryState.PENDING, claimed_by=None,
                                      claimed_at=None, next_attempt_at=None)).rowcount
    return total
