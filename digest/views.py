"""Load plain compose views from the store: the one bridge between the ORM and the pure stages.

``compose`` and ``render`` only ever see the frozen dataclasses built here. Reader views are
loaded for a whole batch of subscribers with one extra query (the articles they already
received), never one query per reader.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.compose import ArticleView, EditionView, ReaderView, edition_cutoff
from digest.models import Article, Delivery, DeliveryState, Edition, Subscriber

__all__ = ["article_view", "candidate_articles", "edition_view", "reader_views"]


def article_view(article: Article) -> ArticleView:
    return ArticleView(
        id=article.id, url=article.url, title=article.title,
        summary_text=article.summary_text, summary_html=article.summary_html,
        published_at=article.published_at, topics=tuple(article.topics or ()),
        image_url=article.image_url, author=article.author,
    )


def edition_view(edition: Edition, tz: ZoneInfo) -> EditionView:
    return EditionView(edition.id, edition.frequency, edition.date,
                       edition_cutoff(edition.date, tz, edition.created_at))


def candidate_articles(session: Session, edition: EditionView,
                       max_lookback: dt.timedelta) -> list[ArticleView]:
    """Every article any reader of this edition could get: published within the lookback."""
    query = (select(Article)
             .where(Article.published_at > edition.cutoff - max_lookback,
                    Article.published_at <= edition.cutoff)
             .order_by(Article.published_at.desc(), Article.id.desc()))
    return [article_view(a) for a in session.scalars(query)]


def reader_views(session: Session, subscribers: Sequence[Subscriber],
                 since: dt.datetime) -> dict[int, ReaderView]:
    """Reader views for ``subscribers``, with the article ids each was sent after ``since``."""
    ids = [s.id for s in subscribers]
    received: dict[int, set[int]] = defaultdict(set)
    if ids:
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.article_ids)
            .where(Delivery.subscriber_id.in_(ids), Delivery.state == DeliveryState.SENT,
                   Delivery.sent_at > since))
        for subscriber_id, article_ids in rows:
            received[subscriber_id].update(article_ids or ())
    return {
        s.id: ReaderView(
            subscriber_id=s.id, email=s.email, name=s.name, topics=frozenset(s.topics or ()),
            frequency=s.frequency, plain_text_only=s.plain_text_only,
            last_digest_at=s.last_digest_at,
            received_article_ids=frozenset(received.get(s.id, ())),
        )
        for s in subscribers
    }
