"""``digest fetch``: poll every feed once and store what is new.

The network work (download + parse) runs in a few worker threads; everything that touches the
database runs on the calling thread, one transaction per feed. A bad feed never stops the run:
its error is stored on the feed row and reported, and the next feed is fetched.

Conditional-GET validators (ETag, Last-Modified) are stored only after a response was parsed and
stored successfully, so a feed that failed half-way is downloaded in full next time. A permanent
redirect (301/308 all the way) moves the stored feed URL; a temporary one does not.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import find_feed
from digest.articles.fetch_report import FeedResult, FetchReport
from digest.articles.http import Download, Validators, download, user_agent
from digest.articles.parse import FeedRejected, ParsedEntry, ParsedFeed, parse_feed
from digest.articles.store import ArticleData, upsert_article
from digest.config.errors import InvalidInput
from digest.config.settings import Settings
from digest.store.models import Feed, utcnow
from digest.topics import parse_topics

__all__ = ["fetch_all", "scoped_guid"]


WORKERS = 4


@dataclass(frozen=True)
class _Job:
    feed_id: int
    url: str
    validators: Validators


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    download: Download
    parsed: ParsedFeed | None
    error: str | None


def _work(job: _Job, settings: Settings) -> _Outcome:
    """Download and parse one feed (runs in a worker thread; no database here)."""
    try:
        return _download_and_parse(job, settings)
    except Exception as exc:  # a bug in one feed's handling must not stop the other feeds
        return _Outcome(job, Download(job.url, job.url), None,
                        f"unexpected failure: {type(exc).__name__}: {exc}")


def _download_and_parse(job: _Job, settings: Settings) -> _Outcome:
    got = download(job.url, job.validators, timeout=settings.feed_timeout,
                   max_bytes=settings.feed_max_bytes, agent=user_agent(settings.site_url))
    if got.error or got.not_modified or got.body is None:
        return _Outcome(job, got, None, got.error)
    try:
        return _Outcome(job, got, parse_feed(got.body, got.final_url, got.content_type), None)
    except FeedRejected as exc:
        return _Outcome(job, got, None, str(exc))


def scoped_guid(guid: str | None, feed_id: int) -> str | None:
    """A guid such as ``42`` is only unique inside its feed; URIs (``https:``, ``tag:``,
    ``urn:``) are global and are kept as they are so the same story dedupes across feeds."""
    if guid is None or ":" in guid:
        return guid
    return f"feed:{feed_id}:{guid}"


def _article(entry: ParsedEntry, feed: Feed) -> ArticleData:
    return ArticleData(
        url=entry.url, title=entry.title, summary_html=entry.summary_html,
        summary_text=entry.summary_text, content_html=entry.content_html, author=entry.author,
        image_url=entry.image_url, topics=parse_topics([*entry.categories, *(feed.topics or [])]),
        published_at=entry.published_at, guid=scoped_guid(entry.guid, feed.id),
    )


def _store(session: Session, feed: Feed, outcome: _Outcome, now: dt.datetime,
           result: FeedResult) -> None:
    got, parsed = outcome.download, outcome.parsed
    feed.last_fetched_at = now
    feed.last_status = got.status
    if outcome.error is not None or parsed is None:
        if not got.not_modified:
            raise FeedRejected(outcome.error or "no content")
        feed.last_error = None
        result.not_modified = True
        return
    skipped = list(parsed.skipped)
    for entry in parsed.entries:
        try:
            change, _ = upsert_article(session, _article(entry, feed), feed_id=feed.id, now=now)
        except InvalidInput as exc:  # raised before anything is written: skip just this item
            skipped.append(f"{entry.url[:100]}: {exc.message}")
            continue
        result.count(change)
    result.skipped = len(skipped)
    feed.title = feed.title or parsed.title
    feed.etag, feed.last_modified = got.validators.etag, got.validators.last_modified
    feed.last_error = "; ".join(skipped)[:2000] or None
    # Another feed may already live at the new address: then keep ours where it is.
    moved = got.moved_permanently and got.final_url != feed.url
    if moved and find_feed(session, got.final_url) is None:
        result.moved_to = feed.url = got.final_url


def _record(sessions: sessionmaker[Session], outcome: _Outcome, now: dt.datetime) -> FeedResult:
    """Write one feed's outcome in its own transaction; a failure is recorded, not raised."""
    result = FeedResult(url=outcome.job.url, status=outcome.download.status)
    try:
        with sessions.begin() as session:
            feed = session.get(Feed, outcome.job.feed_id)
            if feed is None:  # removed while we were fetching
                result.error = "feed was removed during the fetch"
                return result
            _store(session, feed, outcome, now, result)
        return result
    except FeedRejected as exc:
        result.error = str(exc)
    except (IntegrityError, DataError) as exc:
        result.error = f"could not store an item: {exc.orig or exc}"
        result.new = result.updated = result.unchanged = 0  # rolled back
    with sessions.begin() as session:
        feed = session.get(Feed, outcome.job.feed_id)
        if feed is not None:
            feed.last_fetched_at, feed.last_status = now, outcome.download.status
            feed.last_error = result.error
    return result


def fetch_all(sessions: sessionmaker[Session], settings: Settings,
              on_feed: Callable[[FeedResult], None] | None = None) -> FetchReport:
    """Poll every feed once; never raises for a bad feed. ``on_feed`` sees each result as it
    is stored.

    Downloads run in parallel; results are stored in feed order, so the same feeds always give
    the same report (which feed "found" a story first does not depend on network timing).
    """
    with sessions() as session:
        jobs = [_Job(f.id, f.url, Validators(f.etag, f.last_modified))
                for f in session.scalars(select(Feed).order_by(Feed.id))]
    report = FetchReport()
    queue = iter(jobs)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="feed") as pool:
        # A bounded window: at most 2 x WORKERS bodies wait in memory for the database.
        window: deque[Future[_Outcome]] = deque()
        while True:
            while len(window) < 2 * WORKERS and (job := next(queue, None)) is not None:
                window.append(pool.submit(_work, job, settings))
            if not window:
                break
            result = _record(sessions, window.popleft().result(), utcnow())
            report.results.append(result)
            if on_feed is not None:
                on_feed(result)
    return report
