"""Compose (pure): which articles go into one reader's digest.

No database, no clock, no network: the pipeline hands in plain views and the edition's cutoff,
so the rules below are unit-tested with plain objects and a rerun composes the same digest.

The rules:
- an edition (frequency + date) as a delivery sees it has a fixed ``cutoff``: the moment that
  delivery was planned (an hourly run's instant; a manual edition's: capped at the end of its
  date in the site's timezone); articles published after it wait for the next edition;
- a reader's window opens at their last digest's cutoff (``last_digest_at``), or, for a reader who
  never got one, one edition period (24 h daily, 7 days weekly) before the cutoff; a window never
  reaches back more than ``max_lookback`` (a reader back from a long break gets recent news, not a
  month of it);
- an article the reader already received is never included again;
- a reader with topics gets only articles carrying one of them;
- newest first, at most ``max_items``; nothing left means no email (``None``).

May import: store (its enums only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from digest.store.models import Frequency

__all__ = [
    "ArticleView",
    "Digest",
    "EditionView",
    "ReaderView",
    "compose",
    "edition_cutoff",
    "edition_selection",
    "period",
    "window_start",
]


@dataclass(frozen=True)
class ArticleView:
    id: int
    url: str
    title: str
    summary_text: str
    summary_html: str
    published_at: dt.datetime
    topics: tuple[str, ...] = ()
    image_url: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class EditionView:
    id: int
    frequency: Frequency
    date: dt.date
    cutoff: dt.datetime  # aware UTC; see edition_cutoff()


@dataclass(frozen=True)
class ReaderView:
    subscriber_id: int
    email: str  # normalized (may contain a Unicode IDN domain)
    name: str | None
    topics: frozenset[str] = frozenset()
    frequency: Frequency = Frequency.DAILY
    plain_text_only: bool = False
    last_digest_at: dt.datetime | None = None
    received_article_ids: frozenset[int] = frozenset()
    locale: str | None = None  # as stored (ro, ro-RO, ...); render resolves it


@dataclass(frozen=True)
class Digest:
    """What goes into one email. Equal digests render to the same bytes but for the reader's
    own headers and links, so the renderer can render once per distinct digest."""

    edition: EditionView
    articles: tuple[ArticleView, ...]
    plain_text_only: bool = False
    locale: str | None = None  # the reader's; one rendering per language


def period(frequency: Frequency) -> dt.timedelta:
    return dt.timedelta(days=7) if frequency is Frequency.WEEKLY else dt.timedelta(days=1)


def edition_cutoff(date: dt.date, tz: ZoneInfo, planned_at: dt.datetime) -> dt.datetime:
    """The edition's cutoff: when it was planned, but never later than the end of its date."""
    end_of_day = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return min(planned_at, end_of_day).astimezone(dt.UTC)


def window_start(reader: ReaderView, edition: EditionView,
                 max_lookback: dt.timedelta) -> dt.datetime:
    """Where this reader's window opens (exclusive)."""
    earliest = edition.cutoff - max_lookback
    if reader.last_digest_at is None:
        return max(edition.cutoff - period(edition.frequency), earliest)
    return max(reader.last_digest_at, earliest)


def _newest_first(articles: Iterable[ArticleView]) -> list[ArticleView]:
    return sorted(articles, key=lambda a: (a.published_at, a.id), reverse=True)


def compose(articles: Iterable[ArticleView], reader: ReaderView, edition: EditionView, *,
            max_items: int, max_lookback: dt.timedelta) -> Digest | None:
    """The reader's digest for ``edition`` from the candidate ``articles``, or None if empty."""
    start = window_start(reader, edition, max_lookback)
    chosen = [
        a for a in articles
        if start < a.published_at <= edition.cutoff
        and a.id not in reader.received_article_ids
        and (not reader.topics or not reader.topics.isdisjoint(a.topics))
    ]
    if not chosen:
        return None
    return Digest(edition, tuple(_newest_first(chosen)[:max_items]), reader.plain_text_only,
                  reader.locale)


def edition_selection(articles: Iterable[ArticleView], edition: EditionView, *,
                      max_items: int) -> tuple[ArticleView, ...]:
    """The non-personalised selection (archive / "view in browser"): one period, all topics."""
    start = edition.cutoff - period(edition.frequency)
    chosen = [a for a in articles if start < a.published_at <= edition.cutoff]
    return tuple(_newest_first(chosen)[:max_items])
