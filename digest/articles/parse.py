"""Feed bytes -> plain dataclasses, safely.

feedparser is only ever given bytes we already downloaded (never a URL or a path: it would
fetch them itself, without our timeout or size cap). Before feedparser sees a document it is
checked with expat:

* a document that declares XML entities (``<!ENTITY ...>``: billion-laughs bombs, external
  entity tricks) is refused outright; real feeds have no need for them;
* a document that is not well-formed (an HTML page, a truncated download, broken markup) is
  refused with the line and column, except for undefined HTML entities such as ``&nbsp;``, which
  are common in real feeds and which feedparser handles.

Everything that comes out is sanitized: HTML through ``digest.articles.sanitize``, URLs through its
scheme allow-list, titles as plain text.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
import xml.parsers.expat
from dataclasses import dataclass, field
from typing import Any

import feedparser

from digest.articles.sanitize import excerpt, safe_image_url, safe_url, sanitize_html, to_text

__all__ = ["FeedRejected", "ParsedEntry", "ParsedFeed", "parse_feed"]

TITLE_MAX = 1000
AUTHOR_MAX = 300
TOPIC_MAX = 100
EXCERPT_CHARS = 300
_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)


class FeedRejected(ValueError):
    """The document is not a feed we accept; the message says why, for the fetch report."""


@dataclass(frozen=True)
class ParsedEntry:
    """One feed item, cleaned: safe HTML, safe absolute URLs, plain-text title."""

    guid: str | None
    url: str
    title: str
    summary_html: str
    summary_text: str
    content_html: str | None
    author: str | None
    published_at: dt.datetime | None  # None: the feed gave no date (use first-seen time)
    categories: list[str] = field(default_factory=list)
    image_url: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    version: str  # feedparser's name for the format: rss20, atom10, rss10 ...
    entries: list[ParsedEntry]
    skipped: list[str]  # why some items were left out (e.g. no link)


def _check_document(data: bytes) -> None:
    """Refuse entity declarations and documents that are not well-formed XML."""
    if not data.strip():
        raise FeedRejected("empty response: not a feed")
    root = re.search(rb"<[A-Za-z_]", data)
    prolog = data[: root.start()] if root else data
    if _ENTITY_DECL.search(prolog) or _ENTITY_DECL.search(prolog.replace(b"\x00", b"")):
        raise FeedRejected("the document declares XML entities (<!ENTITY>); refused as a "
                           "possible entity-expansion attack")
    parser = xml.parsers.expat.ParserCreate()
    # With a "foreign DTD" assumed, undefined entities (&nbsp;) are skipped, not fatal; nothing
    # external is ever loaded because no ExternalEntityRefHandler is set.
    parser.UseForeignDTD(True)

    def refuse_entity(*_args: Any) -> None:
        raise FeedRejected("the document declares XML entities (<!ENTITY>); refused as a "
                           "possible entity-expansion attack")

    parser.EntityDeclHandler = refuse_entity
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.ErrorString(exc.code)
        hint = " (truncated?)" if exc.code == xml.parsers.expat.errors.codes[
            xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS] else ""
        raise FeedRejected(f"not well-formed XML at line {exc.lineno}, column {exc.offset}: "
                           f"{reason}{hint}") from None
    except ValueError as exc:
        if isinstance(exc, FeedRejected):
            raise
        # expat cannot read multi-byte legacy encodings (GB2312, Shift_JIS); feedparser can,
        # and the entity check above already ran on the raw bytes.


def _to_utc(parsed: time.struct_time | None) -> dt.datetime | None:
    if parsed is None:
        return None
    try:
        return dt.datetime(*parsed[:6], tzinfo=dt.UTC)  # feedparser gives UTC struct_time
    except (TypeError, ValueError):
        return None


def _plain(value: str | None) -> str:
    """A title as plain text. Markup is removed even when the feed calls the title plain text:
    feeds mislabel, and a literal ``<script>`` in a title has no business in the store."""
    if not value:
        return ""
    return " ".join(to_text(value).split())


def _cut(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _image(entry: Any, base: str | None, *html: str | None) -> str | None:
    candidates: list[str | None] = []
    for enc in entry.get("enclosures", []) or []:
        if str(enc.get("type", "")).startswith("image/"):
            candidates.append(enc.get("href") or enc.get("url"))
    for media in entry.get("media_content", []) or []:
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            candidates.append(media.get("url"))
    candidates += [m.get("url") for m in entry.get("media_thumbnail", []) or []]
    for fragment in html:
        if fragment and (m := _IMG_SRC.search(fragment)):
            candidates.append(m.group(1))
    for candidate in candidates:
        if url := safe_image_url(candidate, base):
            return url
    return None


def _entry(entry: Any, feed_url: str) -> ParsedEntry:
    url = safe_url(entry.get("link"), feed_url, schemes=frozenset({"http", "https"}))
    if url is None and entry.get("guidislink"):
        url = safe_url(entry.get("id"), feed_url, schemes=frozenset({"http", "https"}))
    if url is None:
        raise FeedRejected("no usable http(s) link")
    contents = entry.get("content") or []
    raw_content = contents[0].get("value") if contents else None
    raw_summary = entry.get("summary") or raw_content
    summary_html = sanitize_html(raw_summary, url)
    content_html = sanitize_html(raw_content, url) if raw_content else None
    summary_text = excerpt(to_text(summary_html or content_html), EXCERPT_CHARS)
    title = _plain(entry.get("title")) or excerpt(summary_text, 80)
    tags = [str(t.get("term") or t.get("label") or "").strip().lower()
            for t in entry.get("tags", []) or []]
    guid = str(entry.get("id") or "").strip() or None
    return ParsedEntry(
        guid=guid,
        url=url,
        title=_cut(title or url, TITLE_MAX) or url,
        summary_html=summary_html,
        summary_text=summary_text,
        content_html=content_html or None,
        author=_cut(_plain(entry.get("author")), AUTHOR_MAX),
        published_at=_to_utc(entry.get("published_parsed") or entry.get("updated_parsed")),
        categories=sorted({t[:TOPIC_MAX] for t in tags if t}),
        image_url=_image(entry, url, raw_content, raw_summary),
    )


def parse_feed(data: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse downloaded feed bytes; raise ``FeedRejected`` when they are not an acceptable
    feed."""
    _check_document(data)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # Relative links inside item HTML are resolved by sanitize_html against the item's own link
    # (what readers expect for RSS), not by feedparser against the feed URL: feedparser would
    # also turn an obfuscated "java&#9;script:" into an innocent-looking path under the feed.
    result = feedparser.parse(io.BytesIO(data), response_headers=headers,
                              resolve_relative_uris=False)
    version = str(result.get("version") or "")
    channel = result.get("feed", {})
    if not version:
        raise FeedRejected("not an RSS or Atom feed (unknown document type)")
    entries: list[ParsedEntry] = []
    skipped: list[str] = []
    for index, raw in enumerate(result.get("entries", [])):
        try:
            entries.append(_entry(raw, url))
        except FeedRejected as exc:
            skipped.append(f"item {index + 1}: {exc}")
    return ParsedFeed(
        title=_cut(_plain(channel.get("title")), 500),
        link=safe_url(channel.get("link"), url),
        version=version,
        entries=entries,
        skipped=skipped,
    )
