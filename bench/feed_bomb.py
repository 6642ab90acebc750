"""Peak memory of gzip bombs against the feed size cap (DIGEST_FEED_MAX_BYTES).

Run from the repository root:  .venv/bin/python -m bench.feed_bomb [--cap 5000000]

Each scenario runs in a fresh process (peak RSS only ever grows) and prints the process's peak
resident memory (ru_maxrss) above what it used before the download, next to the cap:

* single: one ``Content-Encoding: gzip`` body of 1 GB of spaces (about 1 MB on the wire);
* nested: ``Content-Encoding: gzip, gzip`` -- the same bomb gzipped again (a few KB on the wire);
* four-nested: four nested bombs fetched at once by ``fetch_all`` (its worker threads).
"""

from __future__ import annotations

import argparse
import gzip
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from digest.articles.feed_registry import add_feed
from digest.articles.fetch import fetch_all
from digest.articles.http import Validators, download
from digest.config.settings import Settings
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from tests.feed_server import Route, running_server

DECODED = 1_000_000_000
SCENARIOS = ("single", "nested", "four-nested")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gzip_stream(pieces: list[bytes] | None, size: int = 0) -> bytes:
    """gzip of ``pieces`` (or of ``size`` spaces), built piece by piece so that the bomb itself
    never sits in this process's memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(b"<rss>")]
    block = b" " * 1_000_000
    for piece in pieces if pieces is not None else (block for _ in range(size // len(block))):
        out.append(packer.compress(piece))
    out += [packer.compress(b"</rss>"), packer.flush()]
    return b"".join(out)


def _bomb(layers: int) -> bytes:
    body = _gzip_stream(None, DECODED)
    for _ in range(layers - 1):
        body = gzip.compress(body, compresslevel=9)
    return body


def _run(scenario: str, cap: int) -> None:
    layers = 1 if scenario == "single" else 2
    body = _bomb(layers)
    encoding = ", ".join(["gzip"] * layers)
    with tempfile.TemporaryDirectory() as folder, running_server() as server:
        settings = Settings(database_url=f"sqlite:///{Path(folder) / 'bomb.db'}",
                            feed_max_bytes=cap, feed_timeout=60.0)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        feeds = 4 if scenario == "four-nested" else 1
        urls = [server.add(f"/b{i}", Route(body=body, headers={"Content-Encoding": encoding}))
                for i in range(feeds)]
        before = _rss_mb()
        started = time.perf_counter()
        if feeds == 1:
            error = download(urls[0], Validators(), timeout=60.0, max_bytes=cap,
                             agent="bench").error
        else:
            with sessions.begin() as session:
                for url in urls:
                    add_feed(session, url)
            error = fetch_all(sessions, settings).results[0].error
        elapsed = time.perf_counter() - started
        engine.dispose()
    print(f"{scenario:12} {len(body):>9,} bytes on the wire x{feeds}: peak RSS "
          f"+{_rss_mb() - before:.0f} MB over {before:.0f} MB (cap {cap / 1e6:.1f} MB), "
          f"{elapsed:.2f} s; {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=int, default=5_000_000)
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario in this process")
    args = parser.parse_args()
    if args.scenario:
        _run(args.scenario, args.cap)
        return
    for scenario in SCENARIOS:
        subprocess.run([sys.executable, "-m", "bench.feed_bomb", "--cap", str(args.cap),
                        "--scenario", scenario], check=True)


if __name__ == "__main__":
    main()
