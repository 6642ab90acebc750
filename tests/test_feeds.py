"""Feed ingestion against a real HTTP server on 127.0.0.1 and a real database."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed, remove_feed
from digest.articles.fetch import fetch_all
from digest.articles.parse import FeedRejected, parse_feed
from digest.cli import main
from digest.config.settings import Settings
from digest.store.models import Article, Feed, utcnow
from tests.conftest import cli_env, free_port
from tests.feed_server import DATA, FeedServer, Route, running_server

LAST_MODIFIED = "Wed, 01 May 2024 08:00:00 GMT"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, feed_timeout=1.0, feed_max_bytes=64_000)


def _add(sessions: sessionmaker[Session], url: str, topics: str | None = None) -> None:
    with sessions.begin() as session:
        add_feed(session, url, topics)


def _articles(sessions: sessionmaker[Session]) -> list[Article]:
    with sessions() as session:
        return list(session.scalars(select(Article).order_by(Article.published_at.desc())))


def _feed(sessions: sessionmaker[Session], url: str) -> Feed | None:
    with sessions() as session:
        return session.scalars(select(Feed).where(Feed.url == url)).first()


def test_second_fetch_is_answered_304_and_stores_nothing_twice(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    url = feed_server.add_file("/rss", "rss2.xml", etag='"v1"', last_modified=LAST_MODIFIED)
    _add(sessions, url)

    first = fetch_all(sessions, fast)
    assert (first.new, first.failed) == (3, 0)
    feed = _feed(sessions, url)
    assert feed is not None and (feed.etag, feed.last_modified) == ('"v1"', LAST_MODIFIED)

    second = fetch_all(sessions, fast)
    assert second.failed == 0 and second.new == 0
    assert second.results[0].not_modified and second.results[0].status == 304
    assert "not modified" in second.results[0].line()
    sent = feed_server.seen("/rss")
    assert "if-none-match" not in sent[0] and "if-modified-since" not in sent[0]
    assert sent[1]["if-none-match"] == '"v1"'
    assert sent[1]["if-modified-since"] == LAST_MODIFIED
    assert sent[0]["user-agent"].startswith("digest/") and fast.site_url in sent[0]["user-agent"]
    assert len(_articles(sessions)) == 3


def test_refetch_without_validators_counts_unchanged_and_updated(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    body = (DATA / "rss2.xml").read_bytes()
    url = feed_server.add("/rss", Route(body=body))
    _add(sessions, url)
    fetch_all(sessions, fast)
    feed_server.routes["/rss"] = Route(body=body.replace(b"Library extends", b"Library extends"
                                                         b" (updated)"))
    report = fetch_all(sessions, fast)
    assert (report.new, report.updated, report.unchanged) == (0, 1, 2)
    titles = {a.title for a in _articles(sessions)}
    assert "Library extends (updated) weekend opening hours" in titles
    assert len(titles) == 3


def test_feed_fields_for_rss2(feed_server: FeedServer, sessions: sessionmaker[Session],
                              fast: Settings) -> None:
    _add(sessions, feed_server.add_file("/rss", "rss2.xml"), topics="Valley, News")
    fetch_all(sessions, fast)
    by_title = {a.title: a for a in _articles(sessions)}
    bridge = by_title["Bridge on Mill Road reopens after repairs"]
    # utm_* parameters and the fragment are not part of the stored (canonical) URL
    assert bridge.url == "https://courier.example.com/news/bridge-reopens"
    assert bridge.published_at == dt.datetime(2024, 5, 1, 4, 30, tzinfo=dt.UTC)
    assert bridge.author == "Maria Jensen"
    assert bridge.topics == ["local", "news", "transport", "valley"]
    assert bridge.image_url == "https://cdn.courier.example.com/img/bridge.jpg"  # enclosure
    assert 'href="https://courier.example.com/news/detour"' in bridge.summary_html  # made absolute
    assert bridge.summary_text == ("The Mill Road bridge is open again. "
                                   "Detour signs come down today.")
    library = by_title["Library extends weekend opening hours"]
    assert library.image_url == "https://cdn.courier.example.com/img/library.png"  # media:content
    park = by_title["Council approves the new park budget"]
    assert park.url == "https://courier.example.com/news/park-budget"
    assert park.image_url == "https://cdn.courier.example.com/img/park.jpg"  # first <img>
    assert park.content_html is not None and "Work starts in autumn." in park.content_html
    assert park.guid is not None and park.guid.endswith(":courier-1003")  # scoped to its feed


def test_atom_rss1_and_romanian_feeds(feed_server: FeedServer, sessions: sessionmaker[Session],
                                      fast: Settings) -> None:
    _add(sessions, feed_server.add_file("/atom", "atom.xml",
                                        content_type="application/atom+xml"))
    _add(sessions, feed_server.add_file("/rdf", "rss1.rdf", content_type="application/rdf+xml"))
    _add(sessions, feed_server.add_file("/ro", "romanian.xml"), topics="România")
    report = fetch_all(sessions, fast)
    assert report.failed == 0 and report.new == 6
    by_title = {a.title: a for a in _articles(sessions)}

    ferry = by_title["Ferry timetable changes for summer"]  # type="html" title, markup removed
    assert ferry.published_at == dt.datetime(2024, 5, 2, 6, 0, tzinfo=dt.UTC)
    assert ferry.author == "Tom Okafor" and ferry.topics == ["transport"]
    assert ferry.image_url == "https://img.harbour.example.org/ferry-thumb.jpg"  # media:thumbnail
    fish = by_title["Fish market moves to the north quay"]
    assert "<strong>north quay</strong>" in fish.summary_html  # xhtml content kept as HTML

    choir = by_title["School choir wins regional prize"]
    assert choir.published_at == dt.datetime(2024, 4, 27, 15, 20, tzinfo=dt.UTC)
    assert by_title["New snow plough arrives before winter"].topics == ["roads"]

    targ = by_title["Târgul de primăvară aduce „cei mai buni” meșteri din județ"]
    assert targ.topics == ["cultură", "românia"]
    assert targ.summary_text.startswith("Olari, țesătoare și fierari")
    school = by_title["Școala din Bughea își redeschide cantina"]
    assert "„Copiii vor avea din nou mâncare caldă în fiecare zi.”" in school.summary_text
    assert school.author == "Ioana Mureșan"
    assert school.published_at == dt.datetime(2024, 5, 2, 8, 0, tzinfo=dt.UTC)


def test_items_without_dates_get_the_time_first_seen(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    _add(sessions, feed_server.add_file("/nodates", "nodates.xml"))
    before = utcnow().replace(microsecond=0)
    fetch_all(sessions, fast)
    after = utcnow()
    stored = _articles(sessions)
    assert len(stored) == 2
    assert all(before <= a.published_at <= after for a in stored)
    first_times = {a.url: a.published_at for a in stored}
    report = fetch_all(sessions, fast)  # a later fetch must not move them forward in time
    assert report.unchanged == 2
    assert {a.url: a.published_at for a in _articles(sessions)} == first_times


def test_same_story_in_two_feeds_is_stored_once(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    _add(sessions, feed_server.add_file("/rss", "rss2.xml"))
    mirror = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Mirror</title>'
              b'<item><title>Bridge reopens (mirror)</title>'
              b'<link>HTTPS://Courier.Example.com:443/news/bridge-reopens?utm_campaign=x#top</link>'
              b'</item><item><title>Library, again</title><link>https://elsewhere.example/lib</link>'
              b'<guid isPermaLink="false">https://courier.example.com/news/library-hours</guid>'
              b'</item></channel></rss>')
    _add(sessions, feed_server.add("/mirror", Route(body=mirror)), topics="mirror")
    report = fetch_all(sessions, fast)
    assert report.failed == 0
    assert [r.new for r in report.results] == [3, 0]
    assert report.results[1].updated == 2  # matched by canonical URL, then by guid
    by_url = {a.url: a for a in _articles(sessions)}
    assert len(by_url) == 3
    bridge = by_url["https://courier.example.com/news/bridge-reopens"]
    # The first feed keeps its text; the second adds its topic so its readers get the story.
    assert bridge.title == "Bridge on Mill Road reopens after repairs"
    assert bridge.topics == ["local", "mirror", "transport"]
    again = fetch_all(sessions, fast)  # no flip-flopping between the two versions
    assert (again.new, again.updated, again.unchanged) == (0, 0, 5)


def test_permanent_redirect_moves_the_feed_and_temporary_does_not(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    new_home = feed_server.add_file("/new-home", "rss2.xml")
    moved = feed_server.add("/moved", Route(status=301, location="/new-home"))
    feed_server.add_file("/today", "atom.xml")
    temporary = feed_server.add("/temporary", Route(status=302, location="/today"))
    _add(sessions, moved)
    _add(sessions, temporary)

    report = fetch_all(sessions, fast)
    assert report.failed == 0 and report.new == 5
    assert report.results[0].moved_to == new_home
    assert "moved permanently" in report.results[0].line()
    assert _feed(sessions, moved) is None and _feed(sessions, new_home) is not None
    assert _feed(sessions, temporary) is not None and report.results[1].moved_to is None

    fetch_all(sessions, fast)
    paths = [r.path for r in feed_server.requests]
    assert paths.count("/moved") == 1 and paths.count("/new-home") == 2
    assert paths.count("/temporary") == 2


def _dangerous(html: str) -> list[str]:
    """Everything in ``html`` that could run code or load a non-http(s) resource."""
    found: list[str] = []

    class Check(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in {"script", "style", "iframe", "object", "embed", "svg", "math", "form",
                       "meta", "base", "body", "input", "link"}:
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on") or name == "style":
                    found.append(f"{tag}[{name}]")
                if name in {"href", "src"} and not re.match(r"(https?://|mailto:)", value or ""):
                    found.append(f"{tag}[{name}={value}]")

    Check().feed(html)
    lowered = html.lower()
    found += [word for word in ("javascript:", "vbscript:", "data:", "<script", "onerror",
                                "alert(") if word in lowered]
    return found


def test_hostile_feed_stores_only_safe_html_and_the_run_goes_on(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    _add(sessions, feed_server.add_file("/hostile", "hostile.xml"))
    _add(sessions, feed_server.add("/broken", Route(status=500, body=b"oops")))
    _add(sessions, feed_server.add_file("/rss", "rss2.xml"))
    report = fetch_all(sessions, fast)

    hostile, broken, good = report.results
    assert hostile.ok and hostile.new == 2 and hostile.skipped == 1  # the javascript: link item
    assert broken.error == "HTTP 500 Internal Server Error"
    assert good.ok and good.new == 3
    assert report.failed == 1
    stored = [a for a in _articles(sessions) if "hostile.example.com" in a.url
              or "127.0.0.1" in a.url]
    assert len(stored) == 2
    for article in stored:
        for html in (article.summary_html, article.content_html or "", article.title,
                     article.summary_text, article.image_url or ""):
            assert _dangerous(html) == [], (article.url, html)
    one = next(a for a in stored if a.url.endswith("/one"))
    assert one.title == "Headline"
    assert "Real text survives." in (one.content_html or "")
    assert 'href="https://ok.example.com/safe"' in one.summary_html
    three = next(a for a in stored if a.url.endswith("/three"))
    assert three.image_url == feed_server.url("/pics/three.jpg")
    feed = _feed(sessions, feed_server.url("/hostile"))
    assert feed is not None and "item 2: no usable http(s) link" in (feed.last_error or "")


def test_every_kind_of_bad_feed_is_reported_and_the_good_one_fetched(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    big = b"<rss>" + b"x" * 70_000 + b"</rss>"
    # 10 MB of XML that travels as about 10 KB of gzip: the cap counts the decoded bytes.
    gzip_bomb = gzip.compress(b"<rss>" + b" " * 10_000_000 + b"</rss>")
    bad = {
        feed_server.add("/slow", Route(body=b"<rss/>", delay=3)): "timed out after 1s",
        feed_server.url("/missing"): "HTTP 404",
        feed_server.add("/error", Route(status=500)): "HTTP 500",
        feed_server.add("/big", Route(body=big)): "larger than 64000 bytes",
        feed_server.add("/big-stream", Route(body=big, send_length=False)):
            "larger than 64000 bytes",
        f"http://127.0.0.1:{free_port()}/feed": "cannot connect",
        feed_server.add_file("/truncated", "truncated.xml"): "not well-formed XML",
        feed_server.add_file("/bomb", "bomb.xml"): "declares XML entities",
        feed_server.add("/page", Route(body=b"<!doctype html><html><body><p>Hi<br></body>"
                                       b"</html>", content_type="text/html")):
            "an HTML page, not a feed",
        feed_server.add("/loop", Route(status=301, location="/loop")): "redirects",
        feed_server.add("/gzip", Route(body=gzip_bomb, headers={"Content-Encoding": "gzip"})):
            "larger than 64000 bytes",
        # Each byte arrives within the read timeout, the whole never does.
        feed_server.add("/trickle", Route(body=(DATA / "rss2.xml").read_bytes(), trickle=0.2)):
            "timed out",
    }
    for url in bad:
        _add(sessions, url)
    good = feed_server.add_file("/good", "romanian.xml")
    _add(sessions, good)
    # A mismatched tag is recoverable: feedparser's lenient parser reads the item.
    recovered = feed_server.add_file("/malformed", "malformed.xml")
    _add(sessions, recovered)

    started = time.monotonic()
    lines: list[str] = []
    report = fetch_all(sessions, fast, on_feed=lambda r: lines.append(r.line()))
    assert time.monotonic() - started < 10
    assert report.failed == len(bad)
    errors = {r.url: r.error for r in report.results}
    for url, reason in bad.items():
        assert reason in (errors[url] or ""), (url, errors[url])
        feed = _feed(sessions, url)
        assert feed is not None and reason in (feed.last_error or "")
        assert feed.etag is None
    assert errors[good] is None and errors[recovered] is None and report.new == 3
    assert "https://broken.example.com/a" in {a.url for a in _articles(sessions)}
    assert len(lines) == len(bad) + 2
    assert sum(line.startswith("FAIL ") for line in lines) == len(bad)
    assert report.summary() == (f"{len(bad) + 2} feed(s): 3 new, 0 updated, 0 unchanged, "
                                f"{len(bad)} failed")


def test_validators_are_kept_only_after_a_successful_parse(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    url = feed_server.add_file("/feed", "truncated.xml", etag='"broken"')
    _add(sessions, url)
    assert fetch_all(sessions, fast).failed == 1
    feed_server.add_file("/feed", "rss2.xml", etag='"broken"')  # same tag, now complete
    report = fetch_all(sessions, fast)
    assert report.failed == 0 and report.new == 3  # a full download, not a 304
    assert "if-none-match" not in feed_server.seen("/feed")[1]
    feed = _feed(sessions, url)
    assert feed is not None and feed.etag == '"broken"' and feed.last_error is None


def test_entity_bomb_is_refused_quickly_without_expanding() -> None:
    # Ten levels of ten: expanded, a single title would be 10**10 characters.
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 11))
    doc = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "ha">{levels}]>'
           '<rss version="2.0"><channel><title>&l10;</title></channel></rss>').encode()
    started = time.monotonic()
    with pytest.raises(FeedRejected, match="entity-expansion"):
        parse_feed(doc, "https://laughs.example/feed")
    utf16 = doc.decode().replace('version="1.0"', 'version="1.0" encoding="utf-16"')
    with pytest.raises(FeedRejected, match="entity-expansion"):
        parse_feed(utf16.encode("utf-16"), "https://laughs.example/feed")
    assert time.monotonic() - started < 1.0


def test_removing_a_feed_keeps_its_articles(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    url = feed_server.add_file("/rss", "rss2.xml")
    _add(sessions, url)
    fetch_all(sessions, fast)
    with sessions.begin() as session:
        remove_feed(session, url)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Feed)) == 0
        assert session.scalar(select(func.count()).select_from(Article)) == 3
        assert session.scalars(select(Article.feed_id)).all() == [None, None, None]


def test_cli_feeds_and_fetch(feed_server: FeedServer, sessions: sessionmaker[Session],
                             settings: Settings) -> None:
    env = {**cli_env(settings), "DIGEST_FEED_TIMEOUT": "1"}
    runner = CliRunner()
    good = feed_server.add_file("/rss", "rss2.xml")
    result = runner.invoke(main, ["feeds", "add", good, "--topics", "Local,Știri"], env=env)
    assert result.exit_code == 0, result.output
    assert "Added" in result.output
    assert runner.invoke(main, ["feeds", "add", "ftp://x.example/feed"], env=env).exit_code == 2

    result = runner.invoke(main, ["fetch"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"ok   {good}  3 new, 0 updated, 0 unchanged",
                                          "1 feed(s): 3 new, 0 updated, 0 unchanged, 0 failed"]

    missing = feed_server.url("/gone")
    runner.invoke(main, ["feeds", "add", missing], env=env)
    result = runner.invoke(main, ["fetch", "--format", "json"], env=env)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["failed"] == 1 and data["unchanged"] == 3
    assert [f["ok"] for f in data["feeds"]] == [True, False]
    assert data["feeds"][1]["error"] == "HTTP 404 Not Found"

    listed = json.loads(runner.invoke(main, ["feeds", "list", "--format", "json"],
                                      env=env).output)
    assert [(f["url"], f["topics"]) for f in listed] == [(good, ["local", "știri"]),
                                                         (missing, [])]
    assert listed[1]["last_error"] == "HTTP 404 Not Found"
    result = runner.invoke(main, ["feeds", "remove", missing], env=env)
    assert result.exit_code == 0 and "Removed" in result.output
    result = runner.invoke(main, ["feeds", "remove", missing], env=env)
    assert result.exit_code == 1 and "no feed" in result.output


def test_oversized_fields_skip_the_item_not_the_feed(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    long_path = "a" * 2100
    body = (f'<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
            f"<channel><title>Long</title>"
            f"<item><title>{'T' * 3000}</title><link>https://long.example/ok</link>"
            f"<author>{'Ana ' * 200}</author><guid>{'g' * 3000}</guid>"
            f'<media:thumbnail url="https://long.example/{long_path}.jpg"/></item>'
            f"<item><title>Too long a link</title><link>https://long.example/{long_path}</link>"
            f"</item></channel></rss>").encode()
    _add(sessions, feed_server.add("/long", Route(body=body)))
    report = fetch_all(sessions, fast)
    assert report.failed == 0 and report.new == 1 and report.results[0].skipped == 1
    (article,) = _articles(sessions)
    assert len(article.title) == 1000 and article.title.endswith("…")
    assert article.author is not None and len(article.author) <= 300
    assert article.guid is not None and article.guid.startswith("sha256:")
    assert article.image_url is None
