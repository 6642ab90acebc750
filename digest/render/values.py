"""What the email templates see: plain values derived from a ``Digest`` and the settings.

Kept apart from ``render.py`` (which builds message bytes) so the wording rules -- excerpt
length, subject line, date format, preheader -- are small pure functions, tested on their own.
Words, dates and times are in the reader's language (``digest.render.i18n``: the gettext
catalog and CLDR data), never the process locale (cron's locale must not change an email).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import textwrap
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.compose import ArticleView, Digest
from digest.render.i18n import Language
from digest.render.mime import ascii_url, idna_domain
from digest.store.models import Frequency

__all__ = [
    "EXCERPT_CHARS",
    "ArticleItem",
    "article_items",
    "dateline",
    "excerpt",
    "list_id",
    "long_date",
    "preheader",
    "subject_text",
    "truncate",
    "web_url",
    "wrap",
]

EXCERPT_CHARS = 300
SUBJECT_HEADLINE_CHARS = 90
PREHEADER_CHARS = 140
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class ArticleItem:
    """One article as the templates show it."""

    title: str
    url: str
    excerpt: str
    image_url: str | None
    author: str | None
    published: str  # local time of day, e.g. "14:05"


def long_date(day: dt.date, lang: Language) -> str:
    """``Saturday, November 28, 2026`` / ``sâmbătă, 28 noiembrie 2026``."""
    return lang.date(day, "full")


def dateline(frequency: Frequency, lang: Language) -> str:
    """``Daily digest`` / ``Rezumatul zilei``: which edition this is."""
    if frequency is Frequency.WEEKLY:
        return lang.gettext("Weekly digest")
    return lang.gettext("Daily digest")


def truncate(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and not text[limit - 1].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.-–—") + "…"


def excerpt(article: ArticleView, limit: int = EXCERPT_CHARS) -> str:
    """The plain-text excerpt (falling back to the summary HTML without its tags)."""
    text = article.summary_text or html.unescape(_TAG.sub(" ", article.summary_html))
    return truncate(text, limit)


def web_url(url: str | None) -> str | None:
    """``url`` in ASCII form if it is an absolute http(s) URL, else None (no javascript:)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return ascii_url(url.strip())


def article_items(digest: Digest, tz: dt.tzinfo, fallback_url: str,
                  lang: Language) -> list[ArticleItem]:
    return [
        ArticleItem(
            title=" ".join(a.title.split()),
            url=web_url(a.url) or fallback_url,
            excerpt=excerpt(a),
            image_url=web_url(a.image_url),
            author=a.author,
            published=lang.time(a.published_at.astimezone(tz)),
        )
        for a in digest.articles
    ]


def subject_text(site_name: str, digest: Digest, lang: Language) -> str:
    """``Site, November 28, 2026: Top headline`` (the headline cut at a word boundary)."""
    date = lang.date(digest.edition.date)
    if not digest.articles:
        return lang.gettext("%(site)s, %(date)s", site=site_name, date=date)
    return lang.gettext("%(site)s, %(date)s: %(headline)s", site=site_name, date=date,
                        headline=truncate(digest.articles[0].title, SUBJECT_HEADLINE_CHARS))


def preheader(items: list[ArticleItem], lang: Language) -> str:
    """The inbox preview line: the headlines after the first (the subject has that one)."""
    rest = [i.title for i in items[1:]] or [i.excerpt for i in items[:1]]
    count = lang.ngettext("%(num)d new article", "%(num)d new articles", len(items))
    return truncate(f"{count}: " + " · ".join(rest), PREHEADER_CHARS)


def list_id(site_name: str, domain: str, frequency: Frequency) -> tuple[str, str]:
    """(description, label) for List-Id: a label stable for the list, e.g.
    ``daily.example.ro`` -- one list per frequency, under ``domain``: ``DIGEST_LIST_ID`` or
    the From address's domain, a domain the publication controls (RFC 2919). Not the serving
    host: behind a proxy that is ``127.0.0.1``, and it changes when the web pages move."""
    host = idna_domain(domain.strip().strip(".")).lower() or "localhost"
    if "." not in host:  # RFC 2919 wants a dotted label under a domain we control
        host = f"{host}.invalid"
    return site_name, f"{frequency.value}.{host}"


def wrap(text: str, width: int = 78, indent: str = "", subsequent: str | None = None) -> str:
    """Jinja filter: wrap plain text at ``width``; URLs and long words are never broken."""
    return textwrap.fill(
        " ".join(str(text).split()), width=width, initial_indent=indent,
        subsequent_indent=indent if subsequent is None else subsequent,
        break_long_words=False, break_on_hyphens=False)
