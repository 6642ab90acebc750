"""Load plain compose views from the store: the one bridge between the ORM and the pure stages.

``compose`` and ``render`` only ever see the frozen dataclasses built here. Sending, the dry
run and ``digest preview`` all load through these functions, so a preview is exactly what the
reader would get. Reader views are loaded for a whole batch of subscribers with plain Core
queries (no ORM objects on the hot path): two queries per batch, never one per reader.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from digest.compose import ArticleView, EditionView, ReaderView, edition_cutoff
from digest.delivery.driver_sql import IdQuery, aware_utc, driver_rows, stored_json, stored_time
from digest.store.models import Article, Delivery, Edition, Frequency, Subscriber, SubscriberStatus

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)

# JSON columns read as text: psycopg would parse each in Python; as text, readers of a batch
# who share a value share its parse.
_READERS = IdQuery(f"SELECT id, email, name, CAST(topics AS TEXT), frequency, plain_text_only, "
                   f"last_digest_at, status, locale FROM {S.name} WHERE id {{ids}}")
_RECEIVED = IdQuery(f"SELECT subscriber_id, CAST(article_ids AS TEXT) FROM {D.name} "
                    f"WHERE subscriber_id {{ids}} AND sent_at > {{p}}")
_STATUS = IdQuery(f"SELECT id, status FROM {S.name} WHERE id {{ids}}")
_FREQUENCIES = {f.value: f for f in Frequency}

__all__ = ["article_view", "candidate_articles", "edition_view_for", "inactive_among",
           "load_candidates", "readers_for"]


def article_view(article: Article) -> ArticleView:
    return ArticleView(
        id=article.id, url=article.url, title=article.title,
        summary_text=article.summary_text, summary_html=article.summary_html,
        published_at=article.published_at, topics=tuple(article.topics or ()),
        image_url=article.image_url, author=article.author,
    )


def candidate_articles(session: Session, edition: EditionView,
                       max_lookback: dt.timedelta) -> list[ArticleView]:
    """Every article any reader of this edition could get: published within the lookback."""
    query = (select(Article)
             .where(Article.published_at > edition.cutoff - max_lookback,
                    Article.published_at <= edition.cutoff)
             .order_by(Article.published_at.desc(), Article.id.desc()))
    return [article_view(a) for a in session.scalars(query)]


def load_candidates(conn: Connection, edition: EditionView,
                    lookback: dt.timedelta) -> list[ArticleView]:
    """Every article any reader of ``edition`` could get (once per edition per run)."""
    with Session(bind=conn) as session:
        return candidate_articles(session, edition, lookback)


def edition_view_for(conn: Connection, edition_id: int, tz: ZoneInfo,
                     cutoff: dt.datetime | None = None) -> EditionView:
    """The edition with ``cutoff`` (a scheduled delivery's own), or its own cutoff."""
    row = conn.execute(select(E.c.frequency, E.c.date, E.c.created_at)
                       .where(E.c.id == edition_id)).one()
    return EditionView(edition_id, Frequency(row.frequency), row.date,
                       cutoff or edition_cutoff(row.date, tz, row.created_at))


def readers_for(conn: Connection, subscriber_ids: Sequence[int], since: dt.datetime,
                ) -> tuple[dict[int, ReaderView], set[int]]:
    """Reader views for a batch (no ORM objects, no SQLAlchemy row processing), with the
    articles each was sent after ``since``; and the ids of those no longer active (to be
    skipped). Two statements per batch, the ids as ONE value (``delivery.driver_sql``)."""
    received: dict[int, set[int]] = defaultdict(set)
    ids = list(subscriber_ids)
    # Only sent rows have a sent_at. No condition on state, on purpose: SQLite would pick the
    # state index and walk every sent row of the edition for each batch.
    for sid, article_ids in driver_rows(conn, _RECEIVED, ids, stored_time(conn, since)):
        received[sid].update(stored_json(article_ids) or ())
    readers: dict[int, ReaderView] = {}
    inactive: set[int] = set()
    nothing: frozenset[Any] = frozenset()
    # Values converted here as UTCDateTime, the enums and JSON would, once per distinct stored
    # value: readers of a batch share a few topic choices and last digest times.
    topic_sets: dict[Any, frozenset[str]] = {}
    times: dict[Any, dt.datetime | None] = {}
    for sid, email, name, topics, frequency, plain_text, last, state, locale in driver_rows(
            conn, _READERS, ids):
        if state != SubscriberStatus.ACTIVE:
            inactive.add(sid)
        chosen = topic_sets.get(topics)
        if chosen is None:
            chosen = topic_sets[topics] = frozenset(stored_json(topics) or ()) or nothing
        when = times[last] if last in times else times.setdefault(last, aware_utc(last))
        got = received.get(sid)
        readers[sid] = ReaderView(sid, email, name, chosen, _FREQUENCIES[frequency],
                                  bool(plain_text), when, frozenset(got) if got else nothing,
                                  locale)
    return readers, inactive


def inactive_among(conn: Connection, subscriber_ids: Sequence[int]) -> set[int]:
    """Which of ``subscriber_ids`` may no longer be mailed (not active, or erased): the check
    made just before their messages go out, several times a second during a send.

    Primary-key lookups only, in chunks; the status is tested here, not in the query: with
    ``status = 'active'`` in it, PostgreSQL on a table not analyzed yet (a fresh import) went
    through the status index and tested every active reader against the array -- 88 ms per
    call at 20,000 readers, which starved the claims queued behind it."""
    ids = list(dict.fromkeys(subscriber_ids))
    active = {sid for sid, state in driver_rows(conn, _STATUS, ids)
              if state == SubscriberStatus.ACTIVE}
    return set(ids) - active
