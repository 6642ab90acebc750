"""Plan an edition: create it, fix its archive selection, insert one delivery per due reader.

Set-based Core SQL, never one query per subscriber: ``plan`` is ONE ``INSERT ... SELECT`` of the
readers who are due (``due_readers``, the one definition of "who is due", also used by the dry
run) with ``ON CONFLICT DO NOTHING`` (SQLite >= 3.24 and PostgreSQL share the syntax), so
planning again adds only readers who subscribed since, and never a second row for anyone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Insert,
    Select,
    Table,
    and_,
    exists,
    func,
    insert,
    literal,
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

__all__ = ["due_readers", "ensure_edition", "plan", "set_edition_articles"]

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)
_DONE = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED)


def _is_due(frequency: Frequency) -> ColumnElement[bool]:
    return and_(S.c.status == SubscriberStatus.ACTIVE, S.c.frequency == frequency)


def due_readers(frequency: Frequency, edition_id: int | None = None) -> Select[Any]:
    """The ids of the readers due for an edition of ``frequency``; with ``edition_id``, less
    those whose delivery of that edition is done already (what a dry run would still send)."""
    due = select(S.c.id).where(_is_due(frequency))
    if edition_id is not None:
        due = due.where(~exists().where(and_(D.c.edition_id == edition_id,
                                             D.c.subscriber_id == S.c.id,
                                             D.c.state.in_(_DONE))))
    return due


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
    ).where(_is_due(frequency))
    statement: Insert = _insert(conn).from_select(
        ["edition_id", "subscriber_id", "state", "attempts", "article_ids", "created_at",
         "updated_at"], readers,
    ).on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    # rowcount of INSERT ... SELECT is not reported by every driver (psycopg gives -1 here).
    planned = select(func.count()).select_from(D).where(D.c.edition_id == edition_id)
    before = conn.scalar(planned) or 0
    conn.execute(statement)
    return (conn.scalar(planned) or 0) - before
