"""Compose rules, with plain objects: no database, no clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from digest.compose import (
    ArticleView,
    EditionView,
    ReaderView,
    compose,
    edition_cutoff,
    edition_selection,
)
from digest.store.models import Frequency

BUCHAREST = ZoneInfo("Europe/Bucharest")
CUTOFF = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)  # 07:00 in Bucharest
DAILY = EditionView(1, Frequency.DAILY, dt.date(2026, 11, 28), CUTOFF)
WEEKLY = EditionView(2, Frequency.WEEKLY, dt.date(2026, 11, 28), CUTOFF)
LOOKBACK = dt.timedelta(days=14)


def art(i: int, hours_before: float, topics: tuple[str, ...] = ()) -> ArticleView:
    return ArticleView(id=i, url=f"https://stiri.example.ro/a/{i}", title=f"Articol {i}",
                       summary_text="", summary_html="",
                       published_at=CUTOFF - dt.timedelta(hours=hours_before), topics=topics)


def ids(digest: object) -> list[int]:
    assert digest is not None
    return [a.id for a in digest.articles]  # type: ignore[attr-defined]


def test_new_reader_gets_the_last_24_hours_newest_first() -> None:
    articles = [art(1, 30), art(2, 20), art(3, 1), art(4, 0), art(5, -1)]
    digest = compose(articles, ReaderView(1, "a@x.ro", None), DAILY, max_items=10,
                     max_lookback=LOOKBACK)
    # 30 h ago is outside the window; -1 h is after the cutoff (next edition).
    assert ids(digest) == [4, 3, 2]


def test_weekly_new_reader_gets_seven_days() -> None:
    articles = [art(1, 24 * 6), art(2, 24 * 8)]
    digest = compose(articles, ReaderView(1, "a@x.ro", None, frequency=Frequency.WEEKLY),
                     WEEKLY, max_items=10, max_lookback=LOOKBACK)
    assert ids(digest) == [1]


def test_window_opens_at_last_digest_and_is_bounded_by_lookback() -> None:
    articles = [art(1, 24 * 3), art(2, 24 * 20), art(3, 2)]
    back_from_break = ReaderView(1, "a@x.ro", None,
                                 last_digest_at=CUTOFF - dt.timedelta(days=30))
    assert ids(compose(articles, back_from_break, DAILY, max_items=10,
                       max_lookback=LOOKBACK)) == [3, 1]
    recent = ReaderView(1, "a@x.ro", None, last_digest_at=CUTOFF - dt.timedelta(hours=5))
    assert ids(compose(articles, recent, DAILY, max_items=10, max_lookback=LOOKBACK)) == [3]


def test_already_received_articles_are_never_repeated() -> None:
    articles = [art(1, 3), art(2, 2)]
    reader = ReaderView(1, "a@x.ro", None, received_article_ids=frozenset({2}))
    assert ids(compose(articles, reader, DAILY, max_items=10, max_lookback=LOOKBACK)) == [1]


def test_topics_filter_and_nothing_new_means_no_digest() -> None:
    articles = [art(1, 3, ("sport",)), art(2, 2, ("politica", "local")), art(3, 1)]
    sport = ReaderView(1, "a@x.ro", None, topics=frozenset({"sport"}))
    assert ids(compose(articles, sport, DAILY, max_items=10, max_lookback=LOOKBACK)) == [1]
    culture = ReaderView(1, "a@x.ro", None, topics=frozenset({"cultura"}))
    assert compose(articles, culture, DAILY, max_items=10, max_lookback=LOOKBACK) is None


def test_max_items_keeps_the_newest() -> None:
    articles = [art(i, i) for i in range(1, 8)]
    digest = compose(articles, ReaderView(1, "a@x.ro", None), DAILY, max_items=3,
                     max_lookback=LOOKBACK)
    assert ids(digest) == [1, 2, 3]


def test_equal_digests_for_readers_with_the_same_selection() -> None:
    articles = [art(1, 3), art(2, 2)]
    a = compose(articles, ReaderView(1, "a@x.ro", "A"), DAILY, max_items=5, max_lookback=LOOKBACK)
    b = compose(articles, ReaderView(2, "b@x.ro", "B"), DAILY, max_items=5, max_lookback=LOOKBACK)
    assert a == b and hash(a) == hash(b)


def test_cutoff_is_capped_at_the_end_of_the_edition_date() -> None:
    planned_later = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    cutoff = edition_cutoff(dt.date(2026, 11, 28), BUCHAREST, planned_later)
    # Midnight 29 Nov in Bucharest (UTC+2) is 22:00 UTC on 28 Nov.
    assert cutoff == dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.UTC)
    planned_early = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
    assert edition_cutoff(dt.date(2026, 11, 28), BUCHAREST, planned_early) == planned_early


def test_edition_selection_ignores_topics_and_history() -> None:
    articles = [art(1, 3, ("sport",)), art(2, 30), art(3, 1)]
    assert [a.id for a in edition_selection(articles, DAILY, max_items=10)] == [3, 1]
