"""How many real-world feeds digest stores correctly, against how many feedparser reads.

Run from the repository root:  .venv/bin/python -m bench.feed_corpus [-v] [--format json]

Each feed of tests/data/feeds/real (SOURCES.tsv says where each comes from) is served by a
local HTTP server, fetched by ``digest.articles.fetch.fetch_all`` into a throwaway SQLite
database, and checked by ``tests.feed_corpus.check_feed``: every item feedparser reads with an
http(s) link is stored under that link, titles carry no markup, no author is an email address.
``-v`` lists every feed with its problems.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from digest.config.settings import Settings
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from tests.feed_corpus import Verdict, check_feed, corpus_files, summary
from tests.feed_server import running_server


def _line(v: Verdict) -> str:
    state = "ok  " if v.ok else ("----" if not v.readable else "FAIL")
    text = (f"{state} {v.name:55} {v.kind or 'unread':10} expected {v.expected:3} "
            f"stored {v.stored:3}")
    if v.error:
        text += f"  error: {v.error[:120]}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args()

    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory() as folder, running_server() as server:
        settings = Settings(database_url=f"sqlite:///{Path(folder) / 'corpus.db'}")
        engine = make_engine(settings.database_url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        for path in corpus_files():
            verdicts.append(check_feed(path, server, sessions, settings))
        engine.dispose()
    counts = summary(verdicts)
    if args.format == "json":
        print(json.dumps({"summary": counts, "feeds": [
            {"name": v.name, "kind": v.kind, "expected": v.expected, "stored": v.stored,
             "ok": v.ok, "error": v.error, "problems": v.problems, "notes": v.notes}
            for v in verdicts]}, indent=2))
        return
    if args.verbose:
        for v in verdicts:
            print(_line(v))
            for problem in v.problems[:5]:
                print(f"       {problem}")
            if len(v.problems) > 5:
                print(f"       ... {len(v.problems) - 5} more")
            for note in v.notes[:2]:
                print(f"       note: {note}")
    print(f"{counts['feeds']} feeds: feedparser reads {counts['feedparser_reads_with_items']} "
          f"with items, digest stores {counts['digest_stores_correctly']} of them correctly; "
          f"JSON Feeds {counts['json_feeds_stored_correctly']}/{counts['json_feeds_with_items']}"
          f"; {counts['neither_reads']} read by neither; {counts['titles_read_differently']} "
          "titles decoded once where feedparser decodes twice")


if __name__ == "__main__":
    main()
