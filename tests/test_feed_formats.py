"""JSON Feed, unknown formats named in the error, and compressed bodies (nested gzip, bombs)
decoded as a stream under the size cap -- over real HTTP into a real database."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed
from digest.articles.fetch import fetch_all
from digest.articles.http import Validators, download
from digest.config.settings import Settings
from digest.store.models import Article
from tests.feed_server import DATA, FeedServer, Route, running_server


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, feed_timeout=5.0, feed_max_bytes=1_000_000)


def _fetch(server: FeedServer, sessions: sessionmaker[Session], settings: Settings,
           routes: dict[str, Route]) -> tuple[list[str | None], dict[str, Article]]:
    for path, route in routes.items():
        with sessions.begin() as session:
            add_feed(session, server.add(path, route))
    report = fetch_all(sessions, settings)
    with sessions() as session:
        return [r.error for r in report.results], {a.url: a for a in
                                                   session.scalars(select(Article))}


JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Știri JSON", "home_page_url": "https://stiri.example.ro/",
    "authors": [{"name": "Redacția"}],
    "items": [
        {"id": "1", "url": "https://stiri.example.ro/a?x=1&copy=2",
         "title": "Primul <b>articol</b>",
         "content_html": '<p>Text <a href="/rel">rel</a></p><script>x()</script>',
         "summary": "Rezumat", "image": "https://cdn.stiri.example.ro/a.jpg",
         "date_published": "2026-11-30T08:00:00+02:00", "tags": ["Local", "Politică"],
         "authors": [{"name": "Ana Pop", "url": "mailto:ana@example.ro"}]},
        {"id": "https://stiri.example.ro/b", "url": "https://stiri.example.ro/b",
         "content_text": "Doar text & <nimic> altceva", "date_modified": "2026-11-30T09:00:00Z"},
        {"id": "no-url", "content_text": "an item without a url is skipped"},
    ],
}


def test_json_feed_1_1_and_1_0_are_read_as_feeds(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    old = {**JSON_FEED, "version": "https://jsonfeed.org/version/1", "author": {"name": "Vechi"},
           "items": [{"id": "c", "url": "https://stiri.example.ro/c", "title": "Vechi",
                      "content_html": "<p>1.0</p>", "author": {"name": "Ion <ion@example.ro>"}}]}
    errors, stored = _fetch(feed_server, sessions, fast, {
        "/feed.json": Route(body=json.dumps(JSON_FEED).encode(),
                            content_type="application/feed+json"),
        "/old.json": Route(body=json.dumps(old).encode(), content_type="application/json")})
    assert errors == [None, None]
    first = stored["https://stiri.example.ro/a?x=1&copy=2"]
    assert first.title == "Primul articol"
    assert first.author == "Ana Pop" and first.topics == ["local", "politică"]
    assert first.published_at == dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    assert first.image_url == "https://cdn.stiri.example.ro/a.jpg"
    assert 'href="https://stiri.example.ro/rel"' in (first.content_html or "")
    assert "script" not in (first.content_html or "") and first.summary_text == "Rezumat"
    second = stored["https://stiri.example.ro/b"]
    assert second.title == "Doar text & <nimic> altceva"[:80]
    assert second.author == "Redacția"  # the feed's author when the item names none
    assert second.published_at == dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    assert stored["https://stiri.example.ro/c"].author == "Ion"
    assert len(stored) == 3


@pytest.mark.parametrize(("body", "content_type", "named"), [
    (b"<!doctype html><html><head><title>Home</title>"
     b'<link rel="alternate" type="application/rss+xml" href="/rss.xml"></head>'
     b"<body><p>Hi<br></body></html>", "text/html; charset=utf-8", "an HTML page"),
    (b'{"rss": {"version": "2.0", "channel": {}}}', "application/json",
     "JSON, but not a JSON Feed"),
    (b"[1, 2, 3]", "application/json", "JSON, but not a JSON Feed"),
    (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
     b"<url><loc>https://x.example/</loc></url></urlset>", "application/xml",
     "an XML document whose root element is <urlset>"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf", "application/pdf"),
    (b"Just some words, no markup at all.", "text/plain", "plain text"),
    (b"   \n", "application/rss+xml", "empty"),
])
def test_unknown_formats_are_named(
        body: bytes, content_type: str, named: str, feed_server: FeedServer,
        sessions: sessionmaker[Session], fast: Settings) -> None:
    errors, _ = _fetch(feed_server, sessions, fast, {"/x": Route(body=body,
                                                                 content_type=content_type)})
    assert named in (errors[0] or ""), errors[0]
    assert "line 1" not in (errors[0] or "")
    if "HTML" in named:
        assert feed_server.url("/rss.xml") in (errors[0] or "")  # the page names its feed


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_nested_and_deflate_encodings_are_decoded(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    rss = (DATA / "rss2.xml").read_bytes()
    errors, stored = _fetch(feed_server, sessions, fast, {
        "/gz2": Route(body=gzip.compress(gzip.compress(rss)),
                      headers={"Content-Encoding": "gzip, gzip"}),
        "/deflate": Route(body=zlib.compress(rss.replace(b"courier.example", b"deflate.example")),
                          headers={"Content-Encoding": "deflate"}),
        # raw deflate without the zlib wrapper, as old IIS sent it
        "/raw": Route(body=_raw_deflate(rss.replace(b"courier.example", b"raw.example")),
                      headers={"Content-Encoding": "deflate"})})
    assert errors == [None, None, None] and len(stored) == 9


@functools.cache
def _bomb(decoded: int, layers: int) -> bytes:
    body = gzip.compress(b"<rss>" + b" " * decoded + b"</rss>", compresslevel=9)
    for _ in range(layers - 1):
        body = gzip.compress(body, compresslevel=9)
    return body


def test_gzip_bombs_are_stopped_within_a_few_mb_of_the_cap(feed_server: FeedServer) -> None:
    cap = 1_000_000
    routes = {
        "/single": Route(body=_bomb(20_000_000, 1), headers={"Content-Encoding": "gzip"}),
        "/nested": Route(body=_bomb(20_000_000, 2), headers={"Content-Encoding": "gzip, gzip"}),
    }
    for path, route in routes.items():
        url = feed_server.add(path, route)
        tracemalloc.start()
        try:
            got = download(url, Validators(), timeout=5.0, max_bytes=cap, agent="test")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got.error is not None and "larger than 1000000 bytes" in got.error, path
        assert peak < cap + 2_000_000, (path, peak)


def test_several_bombs_at_once_stay_bounded(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    cap = 1_000_000
    bomb = _bomb(20_000_000, 2)
    routes = {f"/b{i}": Route(body=bomb, headers={"Content-Encoding": "gzip, gzip"})
              for i in range(4)}
    for path, route in routes.items():
        with sessions.begin() as session:
            add_feed(session, feed_server.add(path, route))
    tracemalloc.start()
    try:
        report = fetch_all(sessions, replace(fast, feed_max_bytes=cap))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.failed == 4
    assert all("larger than" in (r.error or "") for r in report.results)
    # four downloads in flight, each held to the cap plus a little
    assert peak < 4 * (cap + 1_000_000), peak
