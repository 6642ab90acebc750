"""Feed ingestion figures: an entity bomb, a large feed, and a fetch of many feeds.

Run from the repository root:  .venv/bin/python -m bench.bench_feeds [--feeds 20] [--items 1000]

Prints the time and the process's peak memory (ru_maxrss) for each step. The fetch step serves
generated RSS from a local HTTP server (tests.feed_server) into a throwaway SQLite database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import tempfile
import time
from pathlib import Path

import feedparser

from digest.articles.feed_registry import add_feed
from digest.articles.fetch import fetch_all
from digest.articles.parse import FeedRejected, parse_feed
from digest.config.settings import Settings
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from tests.feed_server import Route, running_server


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bomb() -> bytes:
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 11))
    return (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "ha">{levels}]>'
            '<rss version="2.0"><channel><title>&l10;</title></channel></rss>').encode()


def _feed(items: int, tag: str) -> bytes:
    filler = "Text de umplutură cu diacritice ș ț ă î â și „ghilimele”. " * 60
    body = "".join(
        f"<item><title>Știrea {tag}-{i}</title>"
        f"<link>https://stiri.example.ro/{tag}/{i}?utm_source=rss</link>"
        f"<pubDate>Wed, 01 May 2024 07:30:00 +0300</pubDate><category>Local</category>"
        f'<description><![CDATA[<p>{filler}</p><img src="/img/{i}.jpg">]]></description></item>'
        for i in range(items))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>{tag}</title><link>https://stiri.example.ro/</link>{body}</channel></rss>"
            ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()

    bomb = _bomb()
    started = time.perf_counter()
    with contextlib.suppress(FeedRejected):
        parse_feed(bomb, "https://laughs.example/feed")
    print(f"entity bomb refused by parse_feed: {(time.perf_counter() - started) * 1000:.2f} ms")

    big = _feed(args.items, "big")
    started = time.perf_counter()
    parsed = parse_feed(big, "https://stiri.example.ro/feed")
    print(f"parse_feed of {len(big) / 1e6:.1f} MB, {len(parsed.entries)} items: "
          f"{time.perf_counter() - started:.2f} s, peak RSS {_peak_mb():.0f} MB")

    with tempfile.TemporaryDirectory() as folder, running_server() as server:
        settings = Settings(database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                            feed_max_bytes=10_000_000)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            for n in range(args.feeds):
                url = server.add(f"/f{n}", Route(body=_feed(50, f"f{n}"), etag=f'"{n}"'))
                add_feed(session, url)
        for label in ("first fetch", "second fetch (304s)"):
            started = time.perf_counter()
            report = fetch_all(sessions, settings)
            print(f"{label} of {args.feeds} feeds x 50 items: "
                  f"{time.perf_counter() - started:.2f} s; {report.summary()}; "
                  f"peak RSS {_peak_mb():.0f} MB")
        engine.dispose()

    # Last, because peak RSS only grows: what the up-front refusal saves us from.
    started = time.perf_counter()
    feedparser.parse(io.BytesIO(bomb))
    print(f"same bomb given to bare feedparser: {time.perf_counter() - started:.2f} s "
          f"(expat's amplification limit stops it), peak RSS {_peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
