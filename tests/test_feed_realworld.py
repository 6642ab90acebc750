"""What CMSs really publish: each feed is served over real HTTP (tests.feed_server) with its
headers, fetched by ``fetch_all`` into a real database, and the stored articles are checked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed
from digest.articles.fetch import fetch_all
from digest.articles.fetch_report import FetchReport
from digest.config.settings import Settings
from digest.store.models import Article
from tests.feed_server import FeedServer, Route, running_server

UTC = dt.UTC


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, feed_timeout=2.0, feed_max_bytes=200_000)


def _rss(items: str, head: str = "", channel: str = "") -> bytes:
    return (f'{head}<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Știri</title>'
            f"<link>http://stiri.example.ro/</link>{channel}{items}</channel></rss>").encode()


def _fetch(server: FeedServer, sessions: sessionmaker[Session], settings: Settings,
           routes: dict[str, Route]) -> tuple[FetchReport, dict[str, Article]]:
    for path, route in routes.items():
        with sessions.begin() as session:
            add_feed(session, server.add(path, route))
    report = fetch_all(sessions, settings)
    with sessions() as session:
        return report, {a.url: a for a in session.scalars(select(Article))}


def _one(server: FeedServer, sessions: sessionmaker[Session], settings: Settings,
         route: Route) -> list[Article]:
    report, stored = _fetch(server, sessions, settings, {"/feed": route})
    assert report.failed == 0, report.results[0].error
    return list(stored.values())


LEGACY = "id=0&section=1&region=2&param=3&copy=4&not=5&times=6&para=7&sect=8&reg=9&amp=10"


def test_links_titles_and_image_urls_are_decoded_exactly_once(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    escaped = LEGACY.replace("&", "&amp;")
    html = (f'<p><a href="/art.php?{escaped}">more</a></p>'
            f'<img src="https://cdn.stiri.example.ro/i.php?w=1&amp;reg=2&amp;copy=3">')
    body = _rss(
        f"<item><title>&amp;lt;b&amp;gt; Ploiești &amp;amp; Brașov</title>"
        f"<link>http://stiri.example.ro/articol.php?{escaped}</link>"
        f"<description><![CDATA[{html}]]></description></item>"
        f"<item><title>Enclosure</title><link>http://stiri.example.ro/e.php?a=1&amp;not=2</link>"
        f'<enclosure url="http://cdn.stiri.example.ro/e.jpg?a=1&amp;times=2" type="image/jpeg"'
        f' length="1"/></item>'
        f"<item><title>Escaped HTML</title><link>http://stiri.example.ro/x?id=1&amp;para=2</link>"
        f'<description>&lt;img src="http://cdn.stiri.example.ro/x.jpg?a=1&amp;amp;sect=2"&gt;'
        f"&lt;p&gt;Text &amp;amp;copy 2026&lt;/p&gt;</description></item>")
    stored = {a.title: a for a in _one(feed_server, sessions, fast, Route(body=body))}
    first = stored["&lt;b&gt; Ploiești &amp; Brașov"]  # XML-decoded once: text, not a tag
    assert first.url == f"http://stiri.example.ro/articol.php?{LEGACY}"
    assert first.image_url == "https://cdn.stiri.example.ro/i.php?w=1&reg=2&copy=3"
    assert f'href="http://stiri.example.ro/art.php?{escaped}"' in first.summary_html
    enclosure = stored["Enclosure"]
    assert enclosure.url == "http://stiri.example.ro/e.php?a=1&not=2"
    assert enclosure.image_url == "http://cdn.stiri.example.ro/e.jpg?a=1&times=2"
    escaped_html = stored["Escaped HTML"]
    assert escaped_html.url == "http://stiri.example.ro/x?id=1&para=2"
    assert escaped_html.image_url == "http://cdn.stiri.example.ro/x.jpg?a=1&sect=2"
    assert escaped_html.summary_text == "Text &copy 2026"


RECOVERABLE = {
    "blank lines before the declaration": b'\n\n  \r\n<?xml version="1.0" encoding="utf-8"?>'
                                         + _rss("<item><title>Ploiești</title>"
                                                "<link>http://s.example.ro/1</link></item>"),
    "unescaped ampersands": _rss("<item><title>Ploiești & Brașov</title>"
                                 "<link>http://s.example.ro/a.php?id=4&cat=2&copy=3</link>"
                                 "<description>Q&A: <b>AT&T</b></description></item>"),
    "windows-1252 byte in UTF-8": _rss("<item><title>Brașov \x96 Ploiești</title>"
                                       "<link>http://s.example.ro/3</link></item>"
                                       ).replace(b"\xc2\x96", b"\x96"),
    "HTML entities and control characters": _rss(
        "<item><title>Caf&eacute;&nbsp;nou\x0b</title>"
        "<link>http://s.example.ro/4</link></item>"),
    "a comment before the declaration": b'<!-- generated by Plugin -->\n<?xml version="1.0"?>'
                                        + _rss("<item><title>Comentariu</title>"
                                               "<link>http://s.example.ro/5</link></item>"),
    "a PHP notice before the feed": b"<br />\n<b>Notice</b>:  Undefined index: x in <b>/var/www/"
                                    b"feed.php</b> on line <b>12</b><br />\n"
                                    + _rss("<item><title>Notice</title>"
                                           "<link>http://s.example.ro/6</link></item>"),
    "served as text/html": _rss("<item><title>Ca pagin\u0103</title>"
                                "<link>http://s.example.ro/7</link></item>"),
}
MEDIA = {"served as text/html": "text/html"}
RECOVERED = {
    "blank lines before the declaration": ("http://s.example.ro/1", "Ploiești"),
    "unescaped ampersands": ("http://s.example.ro/a.php?id=4&cat=2&copy=3", "Ploiești & Brașov"),
    "windows-1252 byte in UTF-8": ("http://s.example.ro/3", "Brașov – Ploiești"),
    "HTML entities and control characters": ("http://s.example.ro/4", "Café nou"),
    "a comment before the declaration": ("http://s.example.ro/5", "Comentariu"),
    "a PHP notice before the feed": ("http://s.example.ro/6", "Notice"),
    "served as text/html": ("http://s.example.ro/7", "Ca pagină"),
}


@pytest.mark.parametrize("case", sorted(RECOVERABLE))
def test_recoverable_xml_errors_still_give_the_items(
        case: str, feed_server: FeedServer, sessions: sessionmaker[Session],
        fast: Settings) -> None:
    (article,) = _one(feed_server, sessions, fast, Route(
        body=RECOVERABLE[case], content_type=MEDIA.get(case, "application/rss+xml")))
    url, title = RECOVERED[case]
    assert (article.url, article.title) == (url, title)
    if case == "unescaped ampersands":
        assert article.summary_text == "Q&A: AT&T"


def test_safety_holds_for_recovered_documents(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    dtd = feed_server.add("/evil.dtd", Route(body=b'<!ENTITY x "boom">',
                                             content_type="application/xml-dtd"))
    external = (f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{dtd}">'.encode()
                + _rss("<item><title>Ext &x;</title><link>http://s.example.ro/ext</link></item>"))
    bomb = (b'\n\n<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>') + _rss(
        "<item><title>&b; & broken</title><link>http://s.example.ro/b</link></item>")
    report, stored = _fetch(feed_server, sessions, fast, {
        "/external": Route(body=external), "/bomb": Route(body=bomb)})
    assert feed_server.seen("/evil.dtd") == []  # the external DTD is never fetched
    assert report.results[0].ok and stored["http://s.example.ro/ext"].title == "Ext &x;"
    assert "declares XML entities" in (report.results[1].error or "")


def test_charset_given_only_in_the_http_header(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    words = "Bucureşti, Ţara Bârsei, Łódź, Žilina"
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{words}</title>'
            f"<item><title>{words}</title><link>http://s.example.cz/1</link>"
            f"<description>{words}</description></item></channel></rss>").encode("cp1250")
    (article,) = _one(feed_server, sessions, fast, Route(
        body=body, content_type="text/xml; charset=windows-1250"))
    assert article.title == words and article.summary_text == words


def test_xml_base_resolves_links_and_images_inside_content(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    atom = (b'<?xml version="1.0" encoding="utf-8"?>'
            b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.org/">'
            b"<title>Blog</title><id>urn:b</id><updated>2026-11-30T08:00:00Z</updated>"
            b'<entry xml:base="posts/2026/"><title>Relative</title><id>urn:b:1</id>'
            b'<link href="first.html"/><updated>2026-11-30T08:00:00Z</updated>'
            b'<content type="html" xml:base="/media/">&lt;p&gt;&lt;a href="../about"&gt;about'
            b'&lt;/a&gt; &lt;img src="pic.jpg"&gt;&lt;/p&gt;</content></entry></feed>')
    rss = _rss('<item xml:base="https://other.example.org/news/"><title>RSS base</title>'
               "<link>https://stiri.example.ro/n/1</link><description><![CDATA["
               '<a href="more.html">more</a><img src="i/2.png">]]></description></item>')
    _, stored = _fetch(feed_server, sessions, fast, {
        "/atom": Route(body=atom, content_type="application/atom+xml"), "/rss": Route(body=rss)})
    post = stored["https://blog.example.org/posts/2026/first.html"]
    assert 'href="https://blog.example.org/about"' in (post.content_html or "")
    assert post.image_url == "https://blog.example.org/media/pic.jpg"
    item = stored["https://stiri.example.ro/n/1"]
    assert 'href="https://other.example.org/news/more.html"' in item.summary_html
    assert item.image_url == "https://other.example.org/news/i/2.png"


def test_author_is_a_name_never_an_email_address(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    authors = {
        "1": ("<author>redactia@example.ro (Redacția)</author>", "Redacția"),
        "2": ("<author>redactia@example.ro</author>", None),
        "3": ("<dc:creator>Ana Pop &lt;ana.pop@example.ro&gt;</dc:creator>", "Ana Pop"),
        "4": ("<author>Ion Ionescu (ion@example.ro)</author>", "Ion Ionescu"),
        "5": ("<dc:creator>mailto:x@example.ro</dc:creator>", None),
        "6": ("<dc:creator>Maria Popescu, maria@example.ro</dc:creator>", "Maria Popescu"),
    }
    items = "".join(f"<item><title>T{key}</title><link>http://s.example.ro/{key}</link>"
                    f"{xml}</item>" for key, (xml, _) in authors.items())
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
            b"<entry><title>Atom</title><id>urn:a:1</id><link href=\"http://s.example.ro/a\"/>"
            b"<author><name>Elena</name><email>elena@example.ro</email></author></entry>"
            b"<entry><title>Atom2</title><id>urn:a:2</id><link href=\"http://s.example.ro/b\"/>"
            b"<author><email>only@example.ro</email></author></entry></feed>")
    _, stored = _fetch(feed_server, sessions, fast, {
        "/rss": Route(body=_rss(items)), "/atom": Route(body=atom)})
    for key, (_, name) in authors.items():
        assert stored[f"http://s.example.ro/{key}"].author == name, key
    assert stored["http://s.example.ro/a"].author == "Elena"
    assert stored["http://s.example.ro/b"].author is None


DATES = [
    ("Luni, 30 Noi 2026 08:00:00 +0200", dt.datetime(2026, 11, 30, 6, 0, tzinfo=UTC)),
    ("Marți, 01 Dec 2025 10:00:00 EET", dt.datetime(2025, 12, 1, 8, 0, tzinfo=UTC)),
    ("Sâmbătă, 15 Aug 2026 10:00:00 EEST", dt.datetime(2026, 8, 15, 7, 0, tzinfo=UTC)),
    ("Mon, 30 Nov 2026 08:00:00 GMT+2", dt.datetime(2026, 11, 30, 6, 0, tzinfo=UTC)),
    ("Mon, 30 Nov 2026 08:00:00 UTC+02:00", dt.datetime(2026, 11, 30, 6, 0, tzinfo=UTC)),
    ("30 noiembrie 2026 08:00 +0200", dt.datetime(2026, 11, 30, 6, 0, tzinfo=UTC)),
    ("Mi, 03 Dez 2025 09:15:00 CET", dt.datetime(2025, 12, 3, 8, 15, tzinfo=UTC)),
    ("mer., 3 déc. 2025 09:15:00 +0100", dt.datetime(2025, 12, 3, 8, 15, tzinfo=UTC)),
    ("Miércoles, 3 Dic 2025 09:15:00 -0300", dt.datetime(2025, 12, 3, 12, 15, tzinfo=UTC)),
    ("2026-08-15 10:00:00 EEST", dt.datetime(2026, 8, 15, 7, 0, tzinfo=UTC)),
    ("Wed, 01 May 2024 07:30:00 +0300", dt.datetime(2024, 5, 1, 4, 30, tzinfo=UTC)),
]


def test_local_date_formats_give_the_right_instant(
        feed_server: FeedServer, sessions: sessionmaker[Session], fast: Settings) -> None:
    items = "".join(f"<item><title>D{i}</title><link>http://s.example.ro/d{i}</link>"
                    f"<pubDate>{text}</pubDate></item>" for i, (text, _) in enumerate(DATES))
    stored = {a.url: a for a in _one(feed_server, sessions, fast, Route(body=_rss(items)))}
    for i, (text, instant) in enumerate(DATES):
        assert stored[f"http://s.example.ro/d{i}"].published_at == instant, text
