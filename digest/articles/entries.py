"""One feed item, whatever the format it came in, cleaned into what the store keeps.

Each reader (feedparser for RSS/Atom, ``json_feed`` for JSON Feed) fills a ``RawEntry`` with
values decoded exactly once by their own parser; ``clean_entry`` never decodes them again. It
makes HTML safe (``sanitize_html``, relative URLs resolved against the ``xml:base`` in effect,
else the item's link), titles plain text, URLs absolute http(s), and the author a name: an email
address is never shown as an author.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field

from digest.articles.sanitize import (
    excerpt,
    safe_image_url,
    safe_url,
    sanitize_html,
    strip_tags,
    to_text,
)

__all__ = ["EntryRejected", "ParsedEntry", "RawEntry", "author_name", "clean_entry", "plain"]

TITLE_MAX = 1000
AUTHOR_MAX = 300
TOPIC_MAX = 100
EXCERPT_CHARS = 300
_HTTP = frozenset({"http", "https"})
_EMAIL = re.compile(r"(?:mailto:)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\bmailto:", re.IGNORECASE)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|<\s*>|\[\s*\]")
_EDGE = " \t,;:-–—|/"


class EntryRejected(ValueError):
    """This item cannot be stored (the message says why); the rest of the feed goes on."""


@dataclass
class RawEntry:
    """An item as its parser read it: every string decoded once, nothing cleaned yet."""

    link: str | None
    guid: str | None = None
    title: str = ""
    title_is_html: bool = False
    summary: str | None = None
    summary_is_html: bool = True
    content: str | None = None
    content_is_html: bool = True
    base: str | None = None  # the xml:base in effect for the item's HTML, if the feed set one
    authors: list[str] = field(default_factory=list)  # first usable one wins
    published: dt.datetime | None = None
    categories: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # enclosures, media:*, JSON image fields


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


def plain(value: str | None, is_html: bool = False) -> str:
    """A title as one line of text. HTML is turned into its text (entities decoded, once);
    plain text keeps its entities as written but loses stray tags: feeds mislabel, and a
    literal ``<script>`` in a title has no business in the store."""
    if not value:
        return ""
    return " ".join((to_text(value) if is_html else strip_tags(value)).split())


def author_name(value: str | None) -> str | None:
    """The name in an author field, never an address: ``ana@x.ro (Ana)`` -> ``Ana``,
    ``Ana <ana@x.ro>`` -> ``Ana``, ``ana@x.ro`` -> None."""
    if not value:
        return None
    text = _EMPTY_BRACKETS.sub("", _EMAIL.sub("", value))
    text = " ".join(strip_tags(text).split()).strip(_EDGE)
    while len(text) > 1 and (text[0], text[-1]) in (("(", ")"), ("[", "]"), ('"', '"')):
        text = text[1:-1].strip(_EDGE)
    return _cut(text, AUTHOR_MAX)


def _cut(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _html(value: str | None, is_html: bool) -> str | None:
    if not value or not value.strip():
        return None
    if is_html:
        return value
    paragraphs = [p for p in re.split(r"\n\s*\n", value) if p.strip()]
    return "".join(f"<p>{html.escape(p.strip(), quote=False)}</p>" for p in paragraphs)


def clean_entry(raw: RawEntry, feed_url: str) -> ParsedEntry:
    """The stored form of ``raw``; raises ``EntryRejected`` when it has no usable link."""
    url = safe_url(raw.link, raw.base or feed_url, schemes=_HTTP)
    if url is None:
        raise EntryRejected("no usable http(s) link")
    base = raw.base or url
    found: list[str] = []
    raw_content = _html(raw.content, raw.content_is_html)
    raw_summary = _html(raw.summary, raw.summary_is_html) or raw_content
    content_html = sanitize_html(raw_content, base, found) if raw_content else None
    summary_html = (content_html if raw_summary is raw_content and content_html is not None
                    else sanitize_html(raw_summary, base, found))
    summary_text = excerpt(to_text(summary_html or content_html), EXCERPT_CHARS)
    title = plain(raw.title, raw.title_is_html) or excerpt(summary_text, 80)
    tags = [plain(t).lower() for t in raw.categories]
    image = next((u for u in (safe_image_url(c, base) for c in raw.images) if u), None)
    author = next((name for name in map(author_name, raw.authors) if name), None)
    return ParsedEntry(
        guid=(raw.guid or "").strip() or None,
        url=url,
        title=_cut(title or url, TITLE_MAX) or url,
        summary_html=summary_html,
        summary_text=summary_text,
        content_html=content_html or None,
        author=author,
        published_at=raw.published,
        categories=sorted({t[:TOPIC_MAX] for t in tags if t}),
        image_url=image or (found[0] if found else None),
    )
