"""The real-world feed corpus (``tests/data/feeds/real``, see its SOURCES.tsv): every feed is
served over HTTP by ``tests.feed_server``, fetched through digest's real fetch path into a real
database, and what was stored is checked against what feedparser itself reads from the same
bytes (bozo tolerated):

* every item feedparser reads with an absolute http(s) link is stored, under that link (decoded
  once, as feedparser reports it; compared in digest's canonical form), and nothing else is;
* titles carry no markup (and are not empty). A title that differs from feedparser's reading
  is noted, not failed: feedparser decodes an RSS title a second time as HTML as soon as it
  holds an entity (``&amp;#x0024;`` -> ``$``), where digest decodes it exactly once;
* no author is an email address (nor contains one);
* image URLs and links inside summaries are absolute http(s) (or mailto for links).

JSON Feeds, which feedparser 6 does not read, are checked against their own JSON the same way.
Shared by ``tests/test_feed_corpus.py`` and ``bench/feed_corpus.py`` (which prints the counts).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed
from digest.articles.fetch import fetch_all
from digest.articles.store import canonical_url
from digest.config.settings import Settings
from digest.store.models import Article, Feed
from tests.feed_server import DATA, FeedServer, Route

REAL = DATA / "real"
_HTTP = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)
_MARKUP = re.compile(r"<[A-Za-z/!?][^>]*>")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def corpus_files() -> list[Path]:
    """The feeds listed in SOURCES.tsv, in its order."""
    with (REAL / "SOURCES.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [REAL / row["filename"] for row in rows]


def content_type(path: Path) -> str:
    """What a typical server sends: a generic type and no charset, so the document's own
    declaration (or its BOM) decides the encoding."""
    return "application/json" if path.suffix == ".json" else "application/xml"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


class _Refs(HTMLParser):
    """The href and src attributes of stored HTML (not text that merely looks like one)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v or "" for k, v in attrs if k in ("href", "src")]


def _refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    parser.close()
    return parser.refs


def _as_text(value: str, kind: str) -> str:
    if "html" in kind:
        parser = _Text()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    return " ".join(value.split())


@dataclass
class Expected:
    kind: str  # "feedparser", "jsonfeed" or "" (nothing readable)
    # canonical link -> its titles (a feed may list one link twice, with different titles)
    titles: dict[str, set[str]] = field(default_factory=dict)


def _json_feed(body: bytes) -> Expected:
    try:
        doc = json.loads(body)
    except ValueError:
        return Expected("")
    if not (isinstance(doc, dict) and str(doc.get("version", "")).startswith(
            ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/"))):
        return Expected("")
    found = Expected("jsonfeed")
    for item in doc.get("items") or []:
        url = str(item.get("url") or "")
        if _HTTP.match(url):
            title = " ".join(str(item.get("title") or "").split())
            found.titles.setdefault(canonical_url(url), set()).add(title)
    return found


def expected_items(body: bytes, url: str, ctype: str) -> Expected:
    """What a reader of this feed should find stored, according to feedparser (or the JSON)."""
    if ctype == "application/json":
        return _json_feed(body)
    # Links are resolved and decoded the same with or without feedparser's HTML passes, which
    # are slow and only rewrite HTML (not checked against feedparser here).
    parsed = feedparser.parse(io.BytesIO(body), response_headers={
        "content-location": url, "content-type": ctype}, sanitize_html=False,
        resolve_relative_uris=False)
    found = Expected("feedparser" if parsed.get("version") else "")
    for entry in parsed.entries:
        link = entry.get("link") or ""
        if not _HTTP.match(link) and entry.get("guidislink"):
            link = entry.get("id") or ""
        if not _HTTP.match(link):
            continue
        detail = entry.get("title_detail") or {}
        title = _as_text(entry.get("title") or "", str(detail.get("type", "text/plain")))
        found.titles.setdefault(canonical_url(link), set()).add(title)
    if not found.titles:
        found.kind = found.kind if parsed.entries else ""
    return found


@dataclass
class Verdict:
    name: str
    kind: str
    expected: int  # items feedparser (or the JSON Feed) has with an http(s) link
    stored: int
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # titles read differently from feedparser

    @property
    def readable(self) -> bool:
        """The reference reader finds items with links in this feed."""
        return self.expected > 0

    @property
    def ok(self) -> bool:
        return self.readable and self.error is None and not self.problems


def _title_note(article: Article, titles: set[str]) -> list[str]:
    # An empty title is replaced by the start of the summary; a long one is cut at 1000.
    if "" in titles or any(article.title == t or (
            len(t) > 1000 and article.title.startswith(t[:900])) for t in titles):
        return []
    return [f"{article.url[:80]}: title {article.title[:80]!r}, feedparser "
            f"{sorted(titles)[0][:80]!r}"]


def _article_problems(article: Article) -> list[str]:
    where = article.url[:80]
    found = []
    if _MARKUP.search(article.title) or not article.title.strip():
        found.append(f"{where}: markup in (or empty) title {article.title[:80]!r}")
    if article.author and _EMAIL.search(article.author):
        found.append(f"{where}: email address in author {article.author!r}")
    if article.image_url and not _HTTP.match(article.image_url):
        found.append(f"{where}: image {article.image_url[:80]!r} is not absolute http(s)")
    for html in (article.summary_html, article.content_html or ""):
        for ref in _refs(html):
            if not (_HTTP.match(ref) or ref.startswith("mailto:")):
                found.append(f"{where}: relative or unsafe link {ref[:80]!r} in HTML")
    return found


def check_feed(path: Path, server: FeedServer, sessions: sessionmaker[Session],
               settings: Settings) -> Verdict:
    """Serve one feed, fetch it through digest, compare with the reference; leaves the
    database empty again (feeds and articles)."""
    body, ctype = path.read_bytes(), content_type(path)
    url = server.add(f"/real/{path.name}", Route(body=body, content_type=ctype))
    reference = expected_items(body, url, ctype)
    with sessions.begin() as session:
        add_feed(session, url)
    report = fetch_all(sessions, settings)
    with sessions.begin() as session:
        stored = {a.url: a for a in session.scalars(select(Article))}
        verdict = Verdict(path.name, reference.kind, len(reference.titles), len(stored),
                          report.results[0].error)
        for link in reference.titles:
            if link not in stored:
                verdict.problems.append(f"missing {link[:100]}")
        for link, article in stored.items():
            if link not in reference.titles:
                verdict.problems.append(f"stored but not in the feed: {link[:100]}")
            verdict.problems += _article_problems(article)
            verdict.notes += _title_note(article, reference.titles.get(link, {""}))
        session.execute(delete(Article))
        session.execute(delete(Feed))
    return verdict


def summary(verdicts: list[Verdict]) -> dict[str, Any]:
    """The counts the issue asks for."""
    by_kind = {kind: [v for v in verdicts if v.kind == kind and v.readable]
               for kind in ("feedparser", "jsonfeed")}
    return {
        "feeds": len(verdicts),
        "feedparser_reads_with_items": len(by_kind["feedparser"]),
        "digest_stores_correctly": sum(v.ok for v in by_kind["feedparser"]),
        "json_feeds_with_items": len(by_kind["jsonfeed"]),
        "json_feeds_stored_correctly": sum(v.ok for v in by_kind["jsonfeed"]),
        "neither_reads": sum(not v.readable for v in verdicts),
        "titles_read_differently": sum(len(v.notes) for v in verdicts),
    }
