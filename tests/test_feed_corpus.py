"""Every feed of the real-world corpus (tests/data/feeds/real) through the real fetch path:
served over HTTP, fetched into a real database, and checked against feedparser's own reading
of the same bytes (see tests/feed_corpus.py for what is checked)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings
from tests.feed_corpus import check_feed, corpus_files, summary
from tests.feed_server import running_server

# Feeds that no reader gets items from: an HTML "Object Moved" page, JSON that is not a JSON
# Feed, a JSON Feed whose items have no url, an Atom feed with no entries, and UTF-16 without a
# byte-order mark (feedparser reads nothing; digest reads its one item).
UNREADABLE = {
    "rss-parser__unrecognized.rss", "netnewswire__ScriptingNews.json",
    "netnewswire__authors.json", "simplepie__feed-with-whitespace-before-xml-declaration.xml",
    "simplepie__feed-utf16le.xml",
}


def test_every_real_feed_is_stored_as_feedparser_reads_it(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    files = corpus_files()
    assert len(files) == 69
    with running_server() as server:
        verdicts = [check_feed(path, server, sessions, settings) for path in files]
    failed = {v.name: (v.error, v.problems[:3]) for v in verdicts
              if v.readable and not v.ok}
    assert failed == {}
    assert {v.name for v in verdicts if not v.readable} == UNREADABLE
    counts = summary(verdicts)
    assert counts["digest_stores_correctly"] == counts["feedparser_reads_with_items"] == 58
    assert counts["json_feeds_stored_correctly"] == counts["json_feeds_with_items"] == 6
    by_name = {v.name: v for v in verdicts}
    # Not a feed: the error says what it is instead of "not well-formed XML at line 1".
    assert "JSON, but not a JSON Feed" in (by_name["netnewswire__ScriptingNews.json"].error
                                           or "")
