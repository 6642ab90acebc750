"""The feeds to poll: add (checked, with topics), find, list, remove.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.articles.sanitize import safe_url
from digest.articles.store import canonical_url, iso_utc
from digest.config.errors import InvalidInput, NotFound
from digest.store.models import Feed
from digest.topics import parse_topics

__all__ = ["add_feed", "feed_as_dict", "find_feed", "list_feeds", "remove_feed"]


_HTTP = frozenset({"http", "https"})


def _check_url(url: str) -> str:
    checked = safe_url(url.strip(), schemes=_HTTP)
    if checked is None or len(checked) > 2000:
        raise InvalidInput(f"{url!r} is not an absolute http(s) URL",
                           "give the feed's full address, e.g. https://news.example.ro/feed")
    return checked


def find_feed(session: Session, url: str) -> Feed | None:
    """The feed stored under ``url`` (exactly, or in canonical form)."""
    exact = session.scalars(select(Feed).where(Feed.url == url.strip())).first()
    if exact is not None:
        return exact
    wanted = canonical_url(url)
    return next((f for f in session.scalars(select(Feed)) if canonical_url(f.url) == wanted), None)


def add_feed(session: Session, url: str, topics: Iterable[str] | str | None = None,
             title: str | None = None) -> tuple[Feed, bool]:
    """Add a feed (or update the topics of an existing one); returns (feed, created)."""
    checked = _check_url(url)
    feed = find_feed(session, checked)
    if feed is not None:
        if topics is not None:
            feed.topics = parse_topics(topics)
        return feed, False
    feed = Feed(url=checked, topics=parse_topics(topics), title=title)
    session.add(feed)
    session.flush()
    return feed, True


def remove_feed(session: Session, url: str) -> Feed:
    """Delete a feed; its articles stay (their feed link is cleared)."""
    feed = find_feed(session, url)
    if feed is None:
        raise NotFound(f"no feed {url!r}", "see the stored URLs with: digest feeds list")
    session.delete(feed)
    session.flush()
    return feed


def list_feeds(session: Session) -> Iterator[Feed]:
    yield from session.scalars(select(Feed).order_by(Feed.id))


def feed_as_dict(feed: Feed) -> dict[str, object]:
    return {
        "url": feed.url, "title": feed.title, "topics": list(feed.topics or []),
        "last_fetched_at": iso_utc(feed.last_fetched_at) if feed.last_fetched_at else None,
        "last_status": feed.last_status, "last_error": feed.last_error,
    }
