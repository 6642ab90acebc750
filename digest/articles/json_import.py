"""Articles pushed as JSON (a CMS export, a script): validation and import.

The input is a JSON array or JSON Lines (one object per line), told apart by its first
character. JSON Lines is read line by line, so a large file is never held in memory; an array is
parsed whole (one document), which is fine for the article counts a site publishes.

Each record is checked on its own: a bad one is reported with its position and the reason, and
the others are kept. Records are committed in chunks, so an interrupted import keeps what it did,
and re-importing the same file updates articles in place (same guid or URL) instead of duplicating
them. HTML in ``summary``/``content_html`` is sanitized exactly like feed content.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from digest.articles.sanitize import excerpt, safe_image_url, safe_url, sanitize_html, to_text
from digest.articles.store import ArticleData, Change, upsert_article
from digest.config.errors import InvalidInput
from digest.problems import Problem, ProblemLog
from digest.topics import parse_topics

__all__ = ["ImportReport", "Problem", "import_articles", "parse_datetime", "record_to_article"]

CHUNK = 200
TITLE_MAX = 1000
AUTHOR_MAX = 300
_HTTP = frozenset({"http", "https"})
_KNOWN = frozenset({"url", "title", "summary", "summary_html", "content_html", "published_at",
                    "author", "topics", "image_url", "guid"})


@dataclass
class ImportReport(ProblemLog):
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def count(self, change: Change) -> None:
        setattr(self, change.value, getattr(self, change.value) + 1)

    def summary(self) -> str:
        return (f"new {self.new}, updated {self.updated}, unchanged {self.unchanged}, "
                f"invalid {self.invalid}")

    def as_dict(self) -> dict[str, Any]:
        return {"new": self.new, "updated": self.updated, "unchanged": self.unchanged,
                "invalid": self.invalid, "problems": [str(p) for p in self.problems]}


def parse_datetime(raw: str, default_tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """ISO 8601 -> aware UTC datetime. A time without an offset is read in ``default_tz`` (the
    site's timezone), a bare date as its midnight there."""
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"{raw!r} is not an ISO 8601 date/time",
                           "use e.g. 2024-05-01T08:30:00+03:00 or 2024-05-01") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value.astimezone(dt.UTC)


def _text(record: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"`{key}` is missing", f"every record needs a {key}")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{key}` must be a string, not {type(value).__name__}")
    return value.strip()


def record_to_article(record: Any, default_tz: dt.tzinfo = dt.UTC) -> ArticleData:
    """Validate one JSON object and turn it into sanitized ``ArticleData``."""
    if not isinstance(record, dict):
        raise InvalidInput(f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - _KNOWN)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}",
                           f"allowed: {', '.join(sorted(_KNOWN))}")
    raw_url = _text(record, "url", required=True)
    url = safe_url(raw_url, schemes=_HTTP)
    if url is None:
        raise InvalidInput(f"`url` {raw_url!r} is not an absolute http(s) URL")
    title = " ".join(to_text(_text(record, "title", required=True)).split())
    if not title:
        raise InvalidInput("`title` is empty once markup is removed")
    raw_image = _text(record, "image_url")
    image = safe_image_url(raw_image)
    if raw_image and image is None:
        raise InvalidInput(f"`image_url` {raw_image!r} is not an absolute http(s) URL")
    published = _text(record, "published_at")
    topics = record.get("topics")
    if topics is not None and not isinstance(topics, str | list):
        raise InvalidInput("`topics` must be a list of strings or a comma-separated string")
    if isinstance(topics, list) and not all(isinstance(t, str) for t in topics):
        raise InvalidInput("`topics` must contain only strings")
    summary_html = sanitize_html(_text(record, "summary_html") or _text(record, "summary"), url)
    content_html = sanitize_html(_text(record, "content_html"), url) or None
    author = _text(record, "author")
    return ArticleData(
        url=url,
        title=title[:TITLE_MAX],
        summary_html=summary_html,
        summary_text=excerpt(to_text(summary_html or content_html), 300),
        content_html=content_html,
        author=author[:AUTHOR_MAX] if author else None,
        image_url=image,
        topics=parse_topics(topics),
        published_at=parse_datetime(published, default_tz) if published else None,
        guid=_text(record, "guid"),
    )


def _records(handle: IO[str]) -> Iterator[tuple[str, Any]]:
    """Yield (position, decoded object or the JSON error) from an array or JSON Lines."""
    skipped = 0  # blank lines before the first record, so line numbers stay true
    while (first := handle.read(1)) and (first.isspace() or first == "\ufeff"):
        skipped += first == "\n"
    if not first:
        raise InvalidInput("the input is empty", "give a JSON array or JSON Lines of articles")
    if first == "[":
        try:
            items = json.loads(first + handle.read())
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the JSON array is not valid JSON: {exc}",
                               "fix the file, or use JSON Lines so one bad line does not "
                               "spoil the rest") from None
        for index, item in enumerate(items):
            yield f"record [{index}]", item
        return
    lines = (first + line if index == 0 else line for index, line in enumerate(handle))
    for number, line in enumerate(lines, skipped + 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", exc


def import_articles(sessions: sessionmaker[Session], handle: IO[str], *,
                    default_tz: dt.tzinfo = dt.UTC,
                    on_problem: Callable[[Problem], None] | None = None) -> ImportReport:
    """Import every good record from ``handle``; report the bad ones."""
    report = ImportReport()
    pending = 0
    with sessions() as session:
        for where, record in _records(handle):
            try:
                if isinstance(record, json.JSONDecodeError):
                    raise InvalidInput(f"invalid JSON: {record.msg} (column {record.colno})")
                # Both raise InvalidInput before writing anything, so no savepoint is needed.
                change, _ = upsert_article(session, record_to_article(record, default_tz))
            except InvalidInput as exc:
                problem = Problem(where, exc.message)
                report.add_problem(problem)
                if on_problem:
                    on_problem(problem)
                continue
            report.count(change)
            pending += 1
            if pending >= CHUNK:
                session.commit()
                pending = 0
        session.commit()
    return report
