"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), read into ``RawEntry`` items.

A JSON document that is not a JSON Feed (no ``version`` naming jsonfeed.org -- RSS-in-JSON,
an API answer, an array) is refused with a message that says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from digest.articles.document import FeedRejected
from digest.articles.entries import RawEntry

__all__ = ["JsonFeed", "read_json_feed"]

_VERSIONS = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


@dataclass(frozen=True)
class JsonFeed:
    title: str | None
    link: str | None
    version: str  # "json1" or "json11", in the style of feedparser's version names
    entries: list[RawEntry]


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _when(value: Any) -> dt.datetime | None:
    """An RFC 3339 date as the spec requires; a date without a zone is taken as UTC."""
    text = _text(value)
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _authors(node: dict[str, Any]) -> list[str]:
    """1.1's ``authors`` list, then 1.0's single ``author``; names only."""
    found = [a for a in node.get("authors") or [] if isinstance(a, dict)]
    if isinstance(node.get("author"), dict):
        found.append(node["author"])
    return [name for a in found if (name := _text(a.get("name")))]


def _item(item: dict[str, Any], feed_authors: list[str]) -> RawEntry:
    url = _text(item.get("url"))
    guid = _text(item.get("id")) if isinstance(item.get("id"), str) else (
        str(item["id"]) if isinstance(item.get("id"), int | float) else None)
    content_html, content_text = _text(item.get("content_html")), _text(item.get("content_text"))
    tags = [t for t in item.get("tags") or [] if isinstance(t, str)]
    return RawEntry(
        link=url,
        guid=guid,
        title=_text(item.get("title")) or "",
        title_is_html=False,  # the spec: a plain-text title
        summary=_text(item.get("summary")),
        summary_is_html=False,
        content=content_html or content_text,
        content_is_html=content_html is not None,
        authors=_authors(item) or feed_authors,
        published=_when(item.get("date_published")) or _when(item.get("date_modified")),
        categories=tags,
        images=[u for u in (_text(item.get("image")), _text(item.get("banner_image"))) if u],
    )


def read_json_feed(text: str) -> JsonFeed:
    """Parse a JSON Feed; raise ``FeedRejected`` for JSON that is not one (or not JSON)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise FeedRejected(f"looks like JSON but does not parse: {exc}") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(_VERSIONS):
        shape = "an object" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        keys = ", ".join(sorted(doc)[:5]) if isinstance(doc, dict) else ""
        raise FeedRejected(f"JSON, but not a JSON Feed: {shape}"
                           + (f" with keys {keys}" if keys else "")
                           + ' and no "version": "https://jsonfeed.org/version/1.1"')
    assert isinstance(doc, dict)
    items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
    authors = _authors(doc)
    return JsonFeed(
        title=_text(doc.get("title")),
        link=_text(doc.get("home_page_url")),
        version="json11" if version.rstrip("/").endswith("1.1") else "json1",
        entries=[_item(i, authors) for i in items],
    )
