"""Plan: create editions, fix their archive selection, insert one delivery per due reader.

Set-based Core SQL, never one query per subscriber: ``plan_groups`` is ONE ``INSERT ... SELECT``
of the readers who are due (``due_readers``, the one definition of "who is due", also used by
the dry run) with ``ON CONFLICT DO NOTHING`` (SQLite >= 3.24 and PostgreSQL share the syntax),
so planning again adds only readers who became due since, and never a second row for anyone.

Who is due comes as ``DueGroup``s (``delivery.schedule``): for an hourly run, one per set of
timezones whose local date and hour agree now, each with its own edition; the statement picks
each reader's edition with a ``CASE`` over the groups. A manual edition (``--date``) is one
group: every active reader of its frequency. Scheduled deliveries carry the run's instant as
their ``cutoff``; a manual one leaves it NULL and uses its edition's cutoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Insert,
    Integer,
    Select,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from digest.delivery.schedule import DueGroup, due_condition, group_condition, manual_group
from digest.store.models import Delivery, DeliveryState, Edition, Frequency, Subscriber, utcnow

__all__ = ["due_readers", "ensure_edition", "find_edition", "groups_with_work", "plan",
           "plan_groups", "set_edition_articles"]

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)
_DONE = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED)


def _pick(groups: Sequence[DueGroup], values: Sequence[int | None]) -> ColumnElement[Any]:
    """Per due reader, the value of their group: a literal for one group, else a CASE on the
    reader's frequency and stored timezone (a due reader's group is known by those two: the
    zones of one frequency's groups do not overlap), cheap string tests, not the groups'
    whole conditions again."""
    if len(groups) == 1 or all(v == values[0] for v in values):
        return literal(values[0], Integer)
    by_frequency: dict[Frequency, dict[str, int | None]] = {}
    for group, value in zip(groups, values, strict=True):
        by_frequency.setdefault(group.frequency, {}).update(
            (zone or "", value) for zone in group.zones)
    zone = func.coalesce(S.c.timezone, "")
    return case(*[(S.c.frequency == f, case(*[(zone == z, literal(v, Integer))
                                              for z, v in zones.items()]))
                  for f, zones in by_frequency.items()])


def due_readers(groups: Sequence[DueGroup], default_hour: int,
                edition_ids: Sequence[int | None] | None = None, *,
                planned: bool = False) -> Select[Any]:
    """The readers due now: ``(id, slot)`` rows, ``slot`` the index of their group; with
    ``edition_ids`` (each group's edition, None if not created yet), less those whose delivery
    of it is done already (what a dry run would still send) -- or, with ``planned``, less those
    who have a delivery of it at all (what planning would still add)."""
    conditions = [group_condition(g, default_hour) for g in groups]
    due = select(S.c.id, _pick(groups, range(len(groups))).label("slot")).where(
        due_condition(conditions))
    if edition_ids is not None and any(e is not None for e in edition_ids):
        has = and_(D.c.edition_id == _pick(groups, edition_ids),
                   D.c.subscriber_id == S.c.id)
        due = due.where(~exists().where(has if planned else and_(has, D.c.state.in_(_DONE))))
    return due


def groups_with_work(conn: Connection, groups: Sequence[DueGroup], default_hour: int,
                     edition_ids: Sequence[int | None]) -> list[int]:
    """Which groups have a reader due and not planned yet (one query), so that only editions
    someone is due for are created."""
    due = due_readers(groups, default_hour, edition_ids, planned=True).subquery()
    return sorted(conn.scalars(select(due.c.slot).distinct()))


def find_edition(conn: Connection, frequency: Frequency, date: dt.date) -> int | None:
    return conn.scalar(select(E.c.id).where(E.c.frequency == frequency, E.c.date == date))


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
    """A manual edition: a pending delivery for every active ``frequency`` reader, whatever
    their hour; return how many were new."""
    return plan_groups(conn, [manual_group(frequency, dt.date.min)], [edition_id],
                       default_hour=0, now=now)


def plan_groups(conn: Connection, groups: Sequence[DueGroup], edition_ids: Sequence[int], *,
                default_hour: int, cutoff: dt.datetime | None = None,
                now: dt.datetime | None = None) -> int:
    """Insert a pending delivery of its group's edition for every reader due; return how many
    were new. One statement, whatever the number of readers and timezones."""
    if not groups:
        return 0
    now = now or utcnow()
    stamp = D.c.created_at.type
    conditions = [group_condition(g, default_hour) for g in groups]
    edition = _pick(groups, edition_ids)
    readers = select(
        edition, S.c.id, literal(DeliveryState.PENDING.value),
        literal(0), literal([], JSON), literal(cutoff, stamp), literal(now, stamp),
        literal(now, stamp),
    ).where(due_condition(conditions))
    # Readers planned earlier today are skipped here, not by the conflict clause: an hourly
    # run would otherwise try (and drop) every row of the day again, which costs as much as
    # inserting them. ON CONFLICT stays for a planner racing another.
    readers = readers.where(~exists().where(D.c.edition_id == edition,
                                            D.c.subscriber_id == S.c.id))
    statement: Insert = _insert(conn).from_select(
        ["edition_id", "subscriber_id", "state", "attempts", "article_ids", "cutoff",
         "created_at", "updated_at"], readers,
    ).on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    # rowcount of INSERT ... SELECT is not reported by every driver (psycopg gives -1 here).
    planned = (select(func.count()).select_from(D)
               .where(D.c.edition_id.in_(sorted(set(edition_ids)))))
    before = conn.scalar(planned) or 0
    with _hash_anti_join(conn):
        conn.execute(statement)
    return (conn.scalar(planned) or 0) - before


@contextlib.contextmanager
def _hash_anti_join(conn: Connection) -> Iterator[None]:
    """PostgreSQL: no nested loop for the planning statement (SQLite: nothing to do).

    The ``NOT EXISTS`` probes the very index the statement inserts into. When the planner
    believes ``deliveries`` holds few rows of the edition (a first edition, a table not
    analyzed since a bulk import) it picks a nested loop whose inner scan walks, for every
    reader, all the rows inserted so far (invisible to the statement, still read): 15 s for
    20,000 readers, quadratic. A hash anti join reads the edition's existing rows once, before
    the first insert: 0.4 s (``bench/send.py --plan-only``). ``SET LOCAL``: this transaction
    only, and back to the default right after.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(text("SET LOCAL enable_nestloop = off"))
    yield  # (a failed statement aborts the transaction, and the setting goes with it)
    conn.execute(text("SET LOCAL enable_nestloop TO DEFAULT"))  # the session's, or the role's
