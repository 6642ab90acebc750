"""The send's per-batch reads at the driver level: an id list as one value, stored values
converted by hand.

A send reads its readers a batch at a time (``delivery.snapshots``), several times a second.
Through SQLAlchemy each of the 500 ids of a batch was a bound literal compiled into the
statement, and each value of each row went through its type's result processor (a regular
expression per timestamp on SQLite): two thirds of the time of a batch's reads, on the thread
that also drives the SMTP connections (measured with ``bench/send.py``). Here:

- the ids go into the statement as ONE piece: on SQLite a literal list of integers (each made
  by ``int()``, so nothing else can get in), on PostgreSQL one text parameter cast to
  ``integer[]`` (``= ANY(...)``: one plan for any length);
- values come back as the driver gives them and are converted the way the column types would
  (``UTCDateTime``: aware UTC; ``JSON``, read as text: parsed), with ``aware_utc`` and
  ``stored_json``; values bound the way they store (``stored_time``, ``stored_text``).

``tests/test_deliveries.py`` checks these reads against the same queries through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

__all__ = ["IdQuery", "aware_utc", "driver_query", "driver_rows", "driver_update", "stored_json",
           "stored_text", "stored_time"]

_CHUNK = 5000  # ids per statement: a short statement whatever the list


class IdQuery:
    """A statement with ``{p}`` for each parameter, where an id list goes ``{ids}`` after a
    column (``IN (...)`` or ``= ANY(...)``) and ``{lock}`` where PostgreSQL takes row locks
    (``FOR UPDATE SKIP LOCKED``; SQLite has one writer): written once for both dialects."""

    def __init__(self, template: str) -> None:
        # Where the id list goes among the parameters (PostgreSQL binds it as one of them).
        self.ids_at = template.split("{ids}")[0].count("{p}")
        self.sqlite = template.replace("{p}", "?").replace(" {lock}", "")
        self.postgresql = (template.replace("{ids}", "= ANY(CAST(%s AS integer[]))")
                           .replace("{p}", "%s").replace("{lock}", "FOR UPDATE SKIP LOCKED"))


def driver_rows(conn: Connection, query: IdQuery, ids: Sequence[int], *params: Any
                ) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` for ``ids`` (in chunks), as the driver returns them."""
    with _cursor(conn) as cursor:
        for start in range(0, len(ids), _CHUNK):
            _execute(conn, cursor, query, ids[start:start + _CHUNK], params)
            yield from cursor.fetchall()


def driver_update(conn: Connection, query: IdQuery, ids: Sequence[int], *params: Any) -> int:
    """Run ``query`` (no result rows) for ``ids``, in chunks; how many rows it changed."""
    changed = 0
    with _cursor(conn) as cursor:
        for start in range(0, len(ids), _CHUNK):
            _execute(conn, cursor, query, ids[start:start + _CHUNK], params)
            changed += cursor.rowcount
    return changed


def _execute(conn: Connection, cursor: Any, query: IdQuery, ids: Sequence[int],
             params: tuple[Any, ...]) -> None:
    chunk = ",".join(str(int(i)) for i in ids)
    if conn.dialect.name == "postgresql":
        at = query.ids_at
        cursor.execute(query.postgresql, (*params[:at], f"{{{chunk}}}", *params[at:]))
    else:
        cursor.execute(query.sqlite.replace("{ids}", f"IN ({chunk})"), params)


def driver_query(conn: Connection, query: IdQuery, *params: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` (no id list), as the driver returns them."""
    with _cursor(conn) as cursor:
        cursor.execute(query.postgresql if conn.dialect.name == "postgresql" else query.sqlite,
                       params)
        return list(cursor.fetchall())


@contextlib.contextmanager
def _cursor(conn: Connection) -> Iterator[Any]:
    # The DBAPI cursor of the connection's transaction: plain tuples, fetched in C (no Row
    # objects). Nothing on it needs SQLAlchemy's events or types.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def stored_time(conn: Connection, when: dt.datetime) -> Any:
    """``when`` as ``UTCDateTime`` binds it: naive UTC; on SQLite the text it stores."""
    if conn.dialect.name == "postgresql":
        return when.astimezone(dt.UTC).replace(tzinfo=None)
    return stored_text(when)


def stored_text(when: dt.datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite (naive UTC, always with microseconds),
    which PostgreSQL reads as a ``timestamp`` too."""
    if when is None:
        return None
    if when.tzinfo is not dt.UTC:  # (the clock's own times are UTC already)
        when = when.astimezone(dt.UTC)
    return when.replace(tzinfo=None).isoformat(" ", "microseconds")


def aware_utc(value: Any) -> dt.datetime | None:
    """A stored ``UTCDateTime`` (SQLite: text; PostgreSQL: a naive datetime) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def stored_json(value: str | None) -> Any:
    """A ``JSON`` column read as text (``CAST(... AS TEXT)``: psycopg would parse it in
    Python itself), parsed; NULL is None."""
    return None if value is None else json.loads(value)
