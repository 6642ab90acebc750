"""Feed bytes -> plain dataclasses, safely: RSS, Atom and RDF through feedparser, JSON Feed
through ``json_feed``.

feedparser is only ever given text we already downloaded (never a URL or a path: it would
fetch them itself, without our timeout or size cap), and only after ``document.prepare`` has
decoded it, repaired what CMSs get wrong and refused entity declarations. Local date formats
are read by the handler ``dates`` registers with feedparser.

feedparser's own HTML sanitizer and relative-URI resolution are switched off: ``entries`` does
both once, with nh3 (feedparser would also turn an obfuscated ``java&#9;script:`` into an
innocent-looking path under the feed). Titles, links and HTML are decoded exactly once.
A document that is no feed gets a message naming what it is.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import feedparser

from digest.articles import dates  # noqa: F401  (registers its date handler with feedparser)
from digest.articles.document import Document, FeedRejected, Kind, prepare
from digest.articles.entries import (
    EntryRejected,
    ParsedEntry,
    RawEntry,
    author_name,
    clean_entry,
    plain,
)
from digest.articles.json_feed import read_json_feed
from digest.articles.sanitize import safe_url

__all__ = ["FeedRejected", "ParsedEntry", "ParsedFeed", "author_name", "parse_feed"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_ALTERNATE = re.compile(
    r"""<link\b(?=[^>]*\brel=["']?alternate)(?=[^>]*\btype=["']?application/"""
    r"""(?:rss|atom|feed)\+(?:xml|json))[^>]*\bhref=["']?([^"'\s>]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    version: str  # feedparser's name for the format (rss20, atom10, rss10 ...) or json1/json11
    entries: list[ParsedEntry]
    skipped: list[str]  # why some items were left out (e.g. no link)


def _to_utc(parsed: time.struct_time | None) -> dt.datetime | None:
    if parsed is None:
        return None
    try:
        return dt.datetime(*parsed[:6], tzinfo=dt.UTC)  # feedparser gives UTC struct_time
    except (TypeError, ValueError):
        return None


def _is_html(detail: Any, value: str, version: str) -> bool:
    """Whether a text construct is HTML. RSS says nothing: feedparser guesses HTML as soon as
    an entity appears, which would decode ``&amp;lt;b&amp;gt;`` a second time; here an RSS text
    is HTML only when it holds tags."""
    kind = str((detail or {}).get("type") or "text/plain")
    if kind not in _HTML_TYPES:
        return False
    return version.startswith("atom") or _TAG.search(value) is not None


def _base(detail: Any, document_url: str) -> str | None:
    """The xml:base in effect, when the feed set one (feedparser reports the document URL
    otherwise)."""
    base = str((detail or {}).get("base") or "")
    return base if base and base != document_url else None


def _images(entry: Any) -> list[str]:
    found: list[str] = []
    for enc in entry.get("enclosures", []) or []:
        if str(enc.get("type", "")).startswith("image/"):
            found.append(enc.get("href") or enc.get("url") or "")
    for media in entry.get("media_content", []) or []:
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            found.append(media.get("url") or "")
    found += [m.get("url") or "" for m in entry.get("media_thumbnail", []) or []]
    return [u for u in found if u]


def _raw(entry: Any, url: str, version: str) -> RawEntry:
    link = entry.get("link")
    if not (link and safe_url(link, url)) and entry.get("guidislink"):
        link = entry.get("id")
    contents = entry.get("content") or []
    content = next((c for c in contents if c.get("type") in _HTML_TYPES), None) or (
        contents[0] if contents else None)
    summary_detail = entry.get("summary_detail")
    summary = entry.get("summary")
    title = entry.get("title") or ""
    detail = entry.get("author_detail") or {}
    return RawEntry(
        link=link,
        guid=str(entry.get("id") or ""),
        title=title,
        title_is_html=_is_html(entry.get("title_detail"), title, version),
        summary=summary,
        summary_is_html=_is_html(summary_detail, summary or "", "atom")
        if summary_detail else True,
        content=content.get("value") if content else None,
        content_is_html=content is None or content.get("type") in _HTML_TYPES,
        base=_base(content or summary_detail, url),
        authors=[str(detail.get("name") or ""), str(entry.get("author") or "")],
        published=_to_utc(entry.get("published_parsed") or entry.get("updated_parsed")),
        categories=[str(t.get("term") or t.get("label") or "") for t in entry.get("tags") or []],
        images=_images(entry),
    )


def _not_a_feed(document: Document, url: str) -> FeedRejected:
    """Name what the document is, in place of a feed."""
    head = document.text[:4096].lower()
    if document.root in ("html", "HTML") or "<!doctype html" in head or "<html" in head:
        found = _ALTERNATE.search(document.text[:65536])
        if found:
            return FeedRejected(f"an HTML page, not a feed; the page names its feed at "
                                f"{urljoin(url, found.group(1))}: add that address instead")
        return FeedRejected("an HTML page, not a feed (the site's address rather than its "
                            "feed's? give the address of its RSS or Atom feed)")
    if document.xml_error:
        return FeedRejected(document.xml_error)
    if document.root:
        return FeedRejected(f"an XML document whose root element is <{document.root}>, not "
                            "RSS, RDF or Atom")
    return FeedRejected("not an RSS or Atom feed (unknown document type)")


def _feedparser(document: Document, url: str) -> ParsedFeed:
    headers = {"content-location": url, "content-type": "application/xml; charset=utf-8"}
    result = feedparser.parse(io.BytesIO(document.text.encode("utf-8")),
                              response_headers=headers, resolve_relative_uris=False,
                              sanitize_html=False)
    version = str(result.get("version") or "")
    if not version and not result.get("entries"):
        raise _not_a_feed(document, url)
    channel = result.get("feed", {})
    entries: list[ParsedEntry] = []
    skipped: list[str] = []
    for index, raw in enumerate(result.get("entries", [])):
        try:
            entries.append(clean_entry(_raw(raw, url, version), url))
        except EntryRejected as exc:
            skipped.append(f"item {index + 1}: {exc}")
    title = channel.get("title")
    return ParsedFeed(
        title=plain(title, _is_html(channel.get("title_detail"), title or "", version))[:500]
        or None,
        link=safe_url(channel.get("link"), url),
        version=version or "unknown",
        entries=entries,
        skipped=skipped,
    )


def parse_feed(data: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse downloaded feed bytes; raise ``FeedRejected`` when they are not an acceptable
    feed."""
    document = prepare(data, content_type)
    if document.kind is not Kind.JSON:
        return _feedparser(document, url)
    feed = read_json_feed(document.text)
    entries: list[ParsedEntry] = []
    skipped: list[str] = []
    for index, raw in enumerate(feed.entries):
        try:
            entries.append(clean_entry(raw, url))
        except EntryRejected as exc:
            skipped.append(f"item {index + 1}: {exc}")
    return ParsedFeed(title=plain(feed.title)[:500] or None, link=safe_url(feed.link, url),
                      version=feed.version, entries=entries, skipped=skipped)
