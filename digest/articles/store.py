"""The article store: insert-or-update by guid then canonical URL, and the queries the rest of
the program reads articles with.

Functions take an open ``Session`` and never commit; the caller owns the transaction.
An article is the same article when it has the same guid, or else the same canonical URL
(scheme and host lower-cased, default port, fragment and ``utm_*``/click-id parameters dropped),
whichever feed or import it came from: so a story in two feeds is stored once.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config.errors import InvalidInput
from digest.store.models import Article, utcnow

__all__ = [
    "ArticleData",
    "Change",
    "article_as_dict",
    "canonical_url",
    "iso_utc",
    "list_articles",
    "recent_articles",
    "upsert_article",
]

URL_MAX = 2000
GUID_MAX = 2000
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_KEYS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_hsenc",
                            "_hsmi", "yclid"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Change(enum.StrEnum):
    """What an upsert did to the store."""

    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ArticleData:
    """An article as it arrives (from a feed or an import), already sanitized."""

    url: str
    title: str
    summary_html: str = ""
    summary_text: str = ""
    content_html: str | None = None
    author: str | None = None
    image_url: str | None = None
    topics: list[str] = field(default_factory=list)
    published_at: dt.datetime | None = None  # None: keep the stored time / use first-seen
    guid: str | None = None


def _is_tracking(segment: str) -> bool:
    key = unquote(segment.split("=", 1)[0]).lower()
    return key.startswith(_TRACKING_PREFIXES) or key in _TRACKING_KEYS


def canonical_url(url: str) -> str:
    """The form of ``url`` used to recognise the same article twice.

    Query parameters other than tracking ones are kept byte for byte and in order: on many
    sites ``?id=42`` *is* the article.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    query = "&".join(s for s in parts.query.split("&") if s and not _is_tracking(s))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def iso_utc(value: dt.datetime) -> str:
    """``2024-05-01T08:30:00Z``: ISO 8601 in UTC, the form every JSON output uses."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bounded_guid(guid: str | None) -> str | None:
    if guid is None or len(guid) <= GUID_MAX:
        return guid
    return "sha256:" + hashlib.sha256(guid.encode()).hexdigest()


def _find(session: Session, guid: str | None, url: str) -> Article | None:
    if guid is not None:
        found = session.scalars(select(Article).where(Article.guid == guid)).first()
        if found is not None:
            return found
    return session.scalars(select(Article).where(Article.url == url)).first()


def _changes(session: Session, article: Article, data: ArticleData, url: str, guid: str | None,
             published: dt.datetime | None, feed_id: int | None) -> dict[str, Any]:
    """The column values that differ between ``article`` and the incoming ``data``.

    From a feed, topics only grow (the union), so a story carried by a sport feed and a local
    feed reaches readers of either topic; and a feed rewrites the other fields only of articles
    it owns (or that nobody owns), so two feeds carrying one story do not overwrite each other
    on every fetch. An import or a manual add is authoritative and replaces everything.
    """
    from_feed = feed_id is not None
    topics = sorted(set(article.topics or []) | set(data.topics)) if from_feed else data.topics
    wanted: dict[str, Any] = {"topics": list(topics)}
    if not from_feed or article.feed_id in (None, feed_id):
        wanted |= {
            "title": data.title, "summary_html": data.summary_html,
            "summary_text": data.summary_text, "content_html": data.content_html,
            "author": data.author, "image_url": data.image_url,
        }
        if from_feed:
            wanted["feed_id"] = feed_id
        if published is not None:
            wanted["published_at"] = published
        if url != article.url and _find(session, None, url) is None:
            wanted["url"] = url  # found by guid and the link moved
    if guid is not None and article.guid is None:
        wanted["guid"] = guid
    return {k: v for k, v in wanted.items() if getattr(article, k) != v}


def upsert_article(session: Session, data: ArticleData, *, feed_id: int | None = None,
                   now: dt.datetime | None = None) -> tuple[Change, Article]:
    """Insert ``data`` or bring the matching stored article up to date."""
    now = now or utcnow()
    url = canonical_url(data.url)
    if len(url) > URL_MAX:
        raise InvalidInput(f"the URL is longer than {URL_MAX} characters",
                           "shorten the link or drop its query string")
    guid = _bounded_guid(data.guid)
    # A date in the future would hide the article until then (clock skew, typos): clamp it.
    published = min(data.published_at, now) if data.published_at else None
    article = _find(session, guid, url)
    if article is None:
        article = Article(
            feed_id=feed_id, guid=guid, url=url, title=data.title,
            summary_html=data.summary_html, summary_text=data.summary_text,
            content_html=data.content_html, author=data.author, image_url=data.image_url,
            topics=list(data.topics), published_at=published or now, first_seen_at=now,
            updated_at=now,
        )
        session.add(article)
        session.flush()  # so the next item of the same batch finds it
        return Change.NEW, article
    changed = _changes(session, article, data, url, guid, published, feed_id)
    if not changed:
        return Change.UNCHANGED, article
    for key, value in changed.items():
        setattr(article, key, value)
    article.updated_at = now
    session.flush()
    return Change.UPDATED, article


def recent_articles(session: Session, since: dt.datetime, until: dt.datetime) -> list[Article]:
    """Articles published in ``[since, until)``, newest first (uses the published_at index)."""
    query = (select(Article)
             .where(Article.published_at >= since, Article.published_at < until)
             .order_by(Article.published_at.desc(), Article.id.desc()))
    return list(session.scalars(query))


def list_articles(session: Session, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None, topic: str | None = None,
                  limit: int | None = None) -> Iterator[Article]:
    """Stream articles newest first, optionally from ``since``, before ``until``, on ``topic``.

    The topic filter runs here rather than in SQL: JSON containment differs between SQLite and
    PostgreSQL, and the date bound already keeps the scan small.
    """
    query = select(Article).order_by(Article.published_at.desc(), Article.id.desc())
    if since is not None:
        query = query.where(Article.published_at >= since)
    if until is not None:
        query = query.where(Article.published_at < until)
    wanted = topic.strip().lower() if topic else None
    count = 0
    for article in session.scalars(query.execution_options(yield_per=500)):
        if wanted and wanted not in (article.topics or []):
            continue
        yield article
        count += 1
        if limit is not None and count >= limit:
            return


def article_as_dict(article: Article) -> dict[str, Any]:
    """The JSON shape of an article (``articles list --format json``)."""
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "summary": article.summary_text,
        "summary_html": article.summary_html,
        "published_at": iso_utc(article.published_at),
        "topics": list(article.topics or []),
        "author": article.author,
        "image_url": article.image_url,
        "guid": article.guid,
        "feed_id": article.feed_id,
    }
