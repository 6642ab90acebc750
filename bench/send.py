"""Benchmark: ``digest send`` end to end against its own ceiling.

    python bench/send.py                 # 100,000 readers, plus a 10,000 run to compare RSS
    python bench/send.py -n 20000 --no-compare --concurrency 8
    python bench/send.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

A minimal SMTP responder runs in a separate process (raw asyncio: greeting, EHLO, MAIL, RCPT
and DATA all answered, nothing parsed). Each measurement runs in a fresh child process so peak
RSS is its own:

- **ceiling**: aiosmtplib sending one pre-built message of the same size as a real digest, N
  times, over the same number of connections (renewed after the same per-connection cap);
- **end-to-end**: ``send_digest`` on a SQLite file (or, with ``--database-url``, in a schema
  of its own in that PostgreSQL database) with N active readers: plan, claim, compose, render,
  send, record.

Prints msg/s for both, their ratio, and peak RSS; ``--json`` for one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["local", "sport", "cultura", "educatie"]


# --- the responder (separate process) ------------------------------------------------------

class _Responder(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.in_data = False
        transport.write(b"220 bench ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        start = max(len(buffer) - 4, 0)
        buffer += data
        while True:
            if self.in_data:
                end = buffer.find(b"\r\n.\r\n", start)
                if end < 0:
                    return
                del buffer[:end + 5]
                self.in_data = False
                self.transport.write(b"250 2.0.0 OK\r\n")
            else:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                verb = bytes(buffer[:4]).upper()
                del buffer[:end + 2]
                if verb == b"EHLO":
                    self.transport.write(b"250-bench\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    self.in_data = True
                    self.transport.write(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    self.transport.write(b"221 bye\r\n")
                    self.transport.close()
                    return
                else:
                    self.transport.write(b"250 OK\r\n")
            start = 0


def _serve(port: int, ready: Any) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Responder, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# --- the database ---------------------------------------------------------------------------

def _settings(database_url: str, port: int, args: argparse.Namespace) -> Any:
    from digest.config.feedback_settings import FeedbackSettings
    from digest.config.settings import Settings, SmtpSecurity

    return Settings(
        feedback=FeedbackSettings(return_path=args.return_path),
        database_url=database_url, site_name="Știri de Argeș", site_url="https://stiri.example.ro",
        base_url="https://stiri.example.ro/digest", from_addr="Știri de Argeș <stiri@example.ro>",
        postal_address="Str. Victoriei 1, Pitești 110017, România",
        secret_key="bench-secret-key-0123456789abcdef", smtp_host="127.0.0.1", smtp_port=port,
        smtp_security=SmtpSecurity.NONE, smtp_timeout=30.0, send_concurrency=args.concurrency,
        batch_size=args.batch_size, smtp_max_per_connection=args.max_per_connection,
        lock_dir=Path(tempfile.gettempdir()))


def _seed(database_url: str, n: int) -> None:
    """N active readers (a few topic mixes, so a few distinct digests) and 8 articles."""
    from sqlalchemy import insert

    from digest.store.engine import make_engine, upgrade
    from digest.store.models import Article, Subscriber, SubscriberStatus, utcnow

    engine = make_engine(database_url)
    upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(Article), [
            {"url": f"https://stiri.example.ro/articol-{i}", "guid": f"g{i}",
             "title": f"Știre de test numărul {i}: ședința consiliului județean Argeș",
             "summary_text": "Consilierii au votat bugetul pentru drumurile județene. " * 3,
             "summary_html": "<p>Consilierii au votat bugetul pentru drumurile județene.</p>",
             "topics": [TOPICS[i % 4]], "published_at": now - dt.timedelta(hours=i + 1),
             "first_seen_at": now, "updated_at": now} for i in range(8)])
        for start in range(0, n, 10_000):
            conn.execute(insert(Subscriber), [
                {"email": f"cititor{i}@example.ro", "name": "Cititor Ăîșț",
                 "status": SubscriberStatus.ACTIVE,
                 "topics": [] if i % 3 == 0 else [TOPICS[i % 4]], "frequency": "daily",
                 "plain_text_only": False, "created_at": now, "updated_at": now}
                for i in range(start, min(start + 10_000, n))])
    engine.dispose()


# --- the two measurements (each in a child process) -----------------------------------------

def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sample_message(settings: Any) -> bytes:
    """A real digest's bytes: what the ceiling sends N times."""
    from digest.compose import EditionView, compose
    from digest.delivery.snapshots import load_candidates, readers_for
    from digest.render.message import Renderer
    from digest.store.engine import make_engine
    from digest.store.models import Frequency, utcnow

    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        edition = EditionView(1, Frequency.DAILY, dt.date.today(), utcnow())
        lookback = dt.timedelta(days=14)
        articles = load_candidates(conn, edition, lookback)
        readers, _ = readers_for(conn, [1], edition.cutoff - lookback)
    digest = compose(articles, readers[1], edition, max_items=10, max_lookback=lookback)
    assert digest is not None
    engine.dispose()
    return Renderer(settings).render(digest).message_for(readers[1]).data


def _ceiling(settings: Any, n: int) -> dict[str, Any]:
    import aiosmtplib

    from digest.transport.connection import open_connection

    message = _sample_message(settings)
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        client = await open_connection(settings)
        used = 0
        while remaining > 0:
            remaining -= 1
            await client.sendmail("stiri@example.ro", ["cititor@example.ro"], message)
            used += 1
            if used >= settings.smtp_max_per_connection:
                await client.quit()
                client, used = await open_connection(settings), 0
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(settings.send_concurrency)))
        return time.perf_counter() - started

    cpu = _cpu_s()
    elapsed = asyncio.run(main())
    return {"messages": n, "seconds": elapsed, "msg_per_s": n / elapsed,
            "cpu_share": (_cpu_s() - cpu) / elapsed,
            "message_bytes": len(message), "peak_rss_mb": _peak_rss_mb()}


def _end_to_end(settings: Any, n: int) -> dict[str, Any]:
    from digest.run.commands import send_digest
    from digest.store.engine import make_engine

    engine = make_engine(settings.database_url)
    cpu = _cpu_s()
    started = time.perf_counter()
    report = send_digest(engine, settings)
    elapsed = time.perf_counter() - started
    assert report.sent == n and report.error is None, report.as_dict()
    return {"messages": report.sent, "seconds": elapsed, "msg_per_s": report.sent / elapsed,
            "cpu_share": (_cpu_s() - cpu) / elapsed, "peak_rss_mb": _peak_rss_mb()}


def _child(args: argparse.Namespace) -> None:
    settings = _settings(args.database_url, args.port, args)
    result = (_ceiling if args.child == "ceiling" else _end_to_end)(settings, args.n)
    print(json.dumps(result))


def _run_child(kind: str, n: int, database_url: str, port: int,
               args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "-n", str(n), "--port", str(port),
               "--database-url", database_url, "--concurrency", str(args.concurrency),
               "--batch-size", str(args.batch_size),
               "--max-per-connection", str(args.max_per_connection)]
    if args.return_path:
        command += ["--return-path", args.return_path]
    if args.profile and kind == "e2e":
        command[1:1] = ["-m", "cProfile", "-s", "tottime", "-o", f"bench-e2e-{n}.prof"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@contextlib.contextmanager
def _database(args: argparse.Namespace, n: int, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a schema of its own in the given PostgreSQL database (created
    here and dropped afterwards, so the bench never touches anything else there)."""
    if not args.database_url:
        yield f"sqlite:///{folder / f'bench-{n}.db'}"
        return
    if not args.database_url.startswith("postgresql"):
        yield args.database_url  # an empty database the caller made
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_send_{n}_{os.getpid()}"
    admin = create_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.database_url else "?"
    try:
        yield f"{args.database_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _measure(n: int, port: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with _database(args, n, folder) as database_url:
        _seed(database_url, n)
        ceiling = _run_child("ceiling", n, database_url, port, args)
        e2e = _run_child("e2e", n, database_url, port, args)
    return {"n": n, "concurrency": args.concurrency, "ceiling": ceiling, "end_to_end": e2e,
            "ratio": e2e["msg_per_s"] / ceiling["msg_per_s"],
            "database": database_url.split(":")[0]}


def _line(result: dict[str, Any]) -> str:
    c, e = result["ceiling"], result["end_to_end"]
    return (f"{result['database']:<20} N={result['n']:>7,}  ceiling {c['msg_per_s']:7.0f} msg/s  "
            f"end-to-end {e['msg_per_s']:7.0f} msg/s  ratio {result['ratio']:.0%}  "
            f"CPU {c['cpu_share']:.0%}/{e['cpu_share']:.0%}  "
            f"peak RSS e2e {e['peak_rss_mb']:.0f} MB (ceiling {c['peak_rss_mb']:.0f} MB)  "
            f"message {c['message_bytes']:,} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100,000)")
    parser.add_argument("--compare", type=int, default=10_000,
                        help="a second, smaller run to compare peak RSS (default 10,000)")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--max-per-connection", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="PostgreSQL: measure there, in a schema the bench creates and "
                             "drops; other URLs: an empty database, only with --no-compare "
                             "(default: a fresh SQLite file per run; env BENCH_DATABASE_URL)")
    parser.add_argument("--return-path", default=None,
                        help="DIGEST_RETURN_PATH: a VERP envelope sender per message")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the end-to-end child")
    parser.add_argument("--child", choices=["ceiling", "e2e"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from digest.transport.sink import free_port

    port = free_port()
    ready = multiprocessing.Event()
    responder = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    responder.start()
    ready.wait(10)
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            sizes = [args.n] if args.no_compare else [args.n, args.compare]
            for n in sizes:
                results.append(_measure(n, port, args, Path(folder)))
                if not args.json:
                    print(_line(results[-1]), flush=True)
    finally:
        responder.terminate()
    if len(results) == 2:
        growth = results[0]["end_to_end"]["peak_rss_mb"] - results[1]["end_to_end"]["peak_rss_mb"]
        summary = {"runs": results, "rss_growth_mb": growth}
        if not args.json:
            print(f"peak RSS at {args.n:,} is {growth:+.1f} MB vs {args.compare:,}")
    else:
        summary = {"runs": results}
    if args.json:
        print(json.dumps(summary, indent=2))
    os.environ.pop("_", None)


if __name__ == "__main__":
    main()
