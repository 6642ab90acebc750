"""The delivery ledger: create an edition, plan its deliveries, claim batches, give claims back.

Every statement here is set-based Core SQL, never one query per subscriber:

- ``plan`` is ONE ``INSERT ... SELECT`` of the active subscribers of the edition's frequency with
  ``ON CONFLICT DO NOTHING`` (SQLite >= 3.24 and PostgreSQL share the syntax), so planning again
  adds only readers who subscribed since, and never a second row for anyone.
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

Results are written by ``digest.delivery.results.Recorder`` in small group commits (on
PostgreSQL by a thread of their own, ``digest.run.offload``, whose gate keeps the same bound). **In-flight bound:** a
crash (even SIGKILL) can resend at most the messages the server accepted whose result was not yet
committed: at most ``GROUP_COMMIT`` buffered results plus one message per connection, i.e.
``GROUP_COMMIT + DIGEST_SEND_CONCURRENCY`` (54 with the defaults), always within
``concurrency x GROUP_COMMIT``. Nothing is lost: unrecorded rows stay ``sending`` and are
claimed again. A resent copy has the same Message-ID, so most mailbox providers fold it away.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    Insert,
    Table,
    and_,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from digest.store.models import (
    Delivery,
    DeliveryState,
    Edition,
    Frequency,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

__all__ = [
    "GROUP_COMMIT",
    "Claim",
    "claim",
    "due_count",
    "ensure_edition",
    "heartbeat",
    "plan",
    "reclaim_orphans",
    "release",
    "set_edition_articles",
    "status",
]

GROUP_COMMIT = 50  # results per commit: the crash duplicate bound (see above)

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: int
    edition_id: int
    subscriber_id: int
    attempts: int


def ensure_edition(conn: Connection, frequency: Frequency, date: dt.date,
                   now: dt.datetime | None = None) -> tuple[int, bool]:
    """The id of the (frequency, date) edition, creating it if needed; and whether it is new.

    ``created_at`` is when it was first planned: it fixes the edition's cutoff for good.
    """
    found = conn.scalar(select(E.c.id).where(E.c.frequency == frequency, E.c.date == date))
    if found is not None:
        return found, False
    try:
        with conn.begin_nested():
            new_id = conn.scalar(insert(E).values(frequency=frequency, date=date,
                                                  created_at=now or utcnow(), article_ids=[])
                                 .returning(E.c.id))
    except IntegrityError:  # another planner created it a moment ago: use theirs
        return conn.scalar(select(E.c.id).where(E.c.frequency == frequency,
                                                E.c.date == date)), False  # type: ignore[return-value]
    assert new_id is not None
    return new_id, True


def set_edition_articles(conn: Connection, edition_id: int, article_ids: Sequence[int]) -> None:
    """Fix the edition's non-personalised selection (its archive page)."""
    conn.execute(update(E).where(E.c.id == edition_id).values(article_ids=list(article_ids)))


def _insert(conn: Connection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(D)


def plan(conn: Connection, edition_id: int, frequency: Frequency,
         now: dt.datetime | None = None) -> int:
    """Insert a pending delivery for every active ``frequency`` subscriber; return how many
    were new. One statement, whatever the number of subscribers."""
    now = now or utcnow()
    stamp = D.c.created_at.type
    readers = select(
        literal(edition_id), S.c.id, literal(DeliveryState.PENDING.value), literal(0),
        literal([], JSON), literal(now, stamp), literal(now, stamp),
    ).where(S.c.status == SubscriberStatus.ACTIVE, S.c.frequency == frequency)
    statement: Insert = _insert(conn).from_select(
        ["edition_id", "subscriber_id", "state", "attempts", "article_ids", "created_at",
         "updated_at"], readers,
    ).on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    # rowcount of INSERT ... SELECT is not reported by every driver (psycopg gives -1 here).
    planned = select(func.count()).select_from(D).where(D.c.edition_id == edition_id)
    before = conn.scalar(planned) or 0
    conn.execute(statement)
    return (conn.scalar(planned) or 0) - before


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
                 .returning(D.c.id, D.c.edition_id, D.c.subscriber_id, D.c.attempts))
    return [Claim(*row) for row in conn.execute(statement)]


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
    # Pending rows have no next_attempt_at, so the (state, next_attempt_at) index yields them
    # in id order from the cursor on: no sort, no scan of the rows already done.
    taken = _take(conn, worker, n, and_(D.c.state == DeliveryState.PENDING,
                                        D.c.next_attempt_at.is_(None), D.c.id > after_id), now)
    if len(taken) < n:
        taken += _take(conn, worker, n - len(taken),
                       _retry(now, stale_before, retry_deferred_before, worker), now)
    return sorted(taken, key=lambda c: c.delivery_id)


def due_count(conn: Connection, *, claim_timeout: float,
              retry_deferred_before: dt.datetime | None = None,
              now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    stale_before = now - dt.timedelta(seconds=claim_timeout)
    due = or_(D.c.state == DeliveryState.PENDING,
              _retry(now, stale_before, retry_deferred_before))
    return conn.scalar(select(func.count()).select_from(D).where(due)) or 0


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


def status(conn: Connection, limit: int = 30) -> list[dict[str, Any]]:
    """The newest editions with their delivery counts by state."""
    editions = conn.execute(select(E.c.id, E.c.frequency, E.c.date)
                            .order_by(E.c.date.desc(), E.c.id.desc()).limit(limit)).all()
    counts: dict[int, dict[str, int]] = {
        e.id: {state.value: 0 for state in DeliveryState} for e in editions}
    if editions:
        for edition_id, state, count in conn.execute(
                select(D.c.edition_id, D.c.state, func.count())
                .where(D.c.edition_id.in_(list(counts)))
                .group_by(D.c.edition_id, D.c.state)):
            counts[edition_id][DeliveryState(state).value] = count
    return [{"id": e.id, "frequency": Frequency(e.frequency).value, "date": e.date.isoformat(),
             "counts": counts[e.id]} for e in editions]
