"""Benchmark: ``digest send`` end to end, with and without PIPELINING, against aiosmtplib.

    PG=postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/send.py                    # 100,000 readers on SQLite, plus 10,000 for RSS
    python bench/send.py -n 20000 --no-compare --databases sqlite,$PG
    python bench/send.py -n 50000 --no-compare --databases $PG --join 2,4
    python bench/send.py -n 1000000 --plan-only --databases $PG

Two minimal SMTP responders run in a separate process (raw asyncio: greeting, EHLO, MAIL, RCPT
and DATA all answered, nothing parsed, pipelined input taken as it comes); one offers
PIPELINING in its EHLO reply, the other does not. Each measurement runs in a fresh child
process so its CPU time and peak RSS are its own, and for each database (a SQLite file, or a
schema of its own in a PostgreSQL database, dropped afterwards):

- **ceiling**: aiosmtplib sending one pre-built message of the same size as a real digest, N
  times, over the same number of connections (renewed after the same per-connection cap), on
  the PIPELINING responder (aiosmtplib does not pipeline);
- **pipelined** / **lock-step**: ``send_digest`` end to end with N active readers -- plan,
  claim, compose, render, send, record -- on the responder that offers PIPELINING, then (the
  ledger reset) on the one that does not;
- with ``--join 2,4`` (PostgreSQL): the edition planned, then that many ``join_send``
  processes at once: msg/s over the wall time, CPU per message summed over the processes;
- with ``--plan-only N``: seed N readers, time the planning of their deliveries, nothing sent.

The three run ``--rounds`` times (default 3), in turn: this machine's speed drifts by tens of
percent within a minute, so each ratio is taken within a round and the median run and the
median ratio are shown, with the spread of the rounds. Prints msg/s, the ratios to the
ceiling, CPU per message (and, for a PostgreSQL on this machine, the server's CPU per message
on top) and peak RSS; ``--json`` for JSON (every round included).
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config.settings import Settings as _DEFAULTS  # noqa: E402 (after sys.path)

TOPICS = ["local", "sport", "cultura", "educatie"]


# --- the responder (separate process) ------------------------------------------------------

class _Responder(asyncio.Protocol):
    pipelining = False

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
                    self.transport.write(b"250-bench\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                                         if self.pipelining else
                                         b"250-bench\r\n250 8BITMIME\r\n")
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


class _Pipelining(_Responder):
    pipelining = True


def _serve(ports: tuple[int, int], ready: Any) -> None:
    """Two responders: PIPELINING offered on the first port, not on the second."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(_Pipelining, "127.0.0.1", ports[0]),
                   await loop.create_server(_Responder, "127.0.0.1", ports[1])]
        ready.set()
        await asyncio.gather(*(server.serve_forever() for server in servers))
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
    return {**_result(n, elapsed, _cpu_s() - cpu), "message_bytes": len(message)}


def _result(sent: int, elapsed: float, cpu: float) -> dict[str, Any]:
    return {"messages": sent, "seconds": elapsed, "msg_per_s": sent / elapsed,
            "cpu_share": cpu / elapsed, "cpu_us_per_msg": cpu / max(sent, 1) * 1e6,
            "peak_rss_mb": _peak_rss_mb()}


def _end_to_end(settings: Any, n: int) -> dict[str, Any]:
    from digest.run.commands import send_digest
    from digest.store.engine import make_engine

    engine = make_engine(settings.database_url)
    cpu = _cpu_s()
    started = time.perf_counter()
    report = send_digest(engine, settings)
    elapsed = time.perf_counter() - started
    assert report.sent == n and report.error is None, report.as_dict()
    return _result(report.sent, elapsed, _cpu_s() - cpu)


def _join(settings: Any, n: int) -> dict[str, Any]:
    """One of several ``digest send --join`` processes; ``n`` is ignored (they share)."""
    from digest.run.commands import join_send
    from digest.store.engine import make_engine

    engine = make_engine(settings.database_url)
    cpu = _cpu_s()
    started = time.perf_counter()
    report = join_send(engine, settings)
    assert report.error is None, report.as_dict()
    return {**_result(report.sent, time.perf_counter() - started, _cpu_s() - cpu),
            "cpu_s": _cpu_s() - cpu}


def _plan(settings: Any, n: int) -> dict[str, Any]:
    """Plan today's edition (``digest send`` before its first claim), nothing sent."""
    from digest.run.commands import SendOptions, plan_editions
    from digest.run.report import RunReport
    from digest.store.engine import make_engine

    engine = make_engine(settings.database_url)
    report = RunReport()
    cpu = _cpu_s()
    started = time.perf_counter()
    plan_editions(engine, settings, SendOptions(), report)
    elapsed = time.perf_counter() - started
    assert report.planned == n, report.as_dict()
    return {"planned": report.planned, "seconds": elapsed, "cpu_s": _cpu_s() - cpu,
            "peak_rss_mb": _peak_rss_mb()}


_KINDS = {"ceiling": "_ceiling", "e2e": "_end_to_end", "join": "_join", "plan": "_plan"}


def _child(args: argparse.Namespace) -> None:
    settings = _settings(args.database_url, args.port, args)
    result = globals()[_KINDS[args.child]](settings, args.n)
    print(json.dumps(result))


def _command(kind: str, n: int, database_url: str, port: int,
             args: argparse.Namespace) -> list[str]:
    command = [sys.executable, __file__, "--child", kind, "-n", str(n), "--port", str(port),
               "--databases", database_url, "--concurrency", str(args.concurrency),
               "--batch-size", str(args.batch_size),
               "--max-per-connection", str(args.max_per_connection)]
    if args.return_path:
        command += ["--return-path", args.return_path]
    if args.profile and kind == "e2e":
        command[1:1] = ["-m", "cProfile", "-s", "tottime", "-o",
                        f"bench-e2e-{n}-{port}.prof"]
    return command


def _output(done: subprocess.CompletedProcess[str] | subprocess.Popen[str], kind: str,
            out: str, err: str) -> dict[str, Any]:
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _run_child(kind: str, n: int, database_url: str, port: int,
               args: argparse.Namespace) -> dict[str, Any]:
    server = _server_cpu_s(database_url)
    done = subprocess.run(_command(kind, n, database_url, port, args), capture_output=True,
                          text=True, check=False)
    result = _output(done, kind, done.stdout, done.stderr)
    if server is not None and result.get("messages"):
        result["server_cpu_us_per_msg"] = ((_server_cpu_s(database_url) or 0.0) - server
                                           ) / result["messages"] * 1e6
    return result


def _server_cpu_s(database_url: str) -> float | None:
    """CPU seconds used so far by this machine's ``postgres`` processes (a PostgreSQL on
    127.0.0.1 or localhost; None otherwise): the database's share of a send, which runs on
    the same cores here. Includes whatever else the server does meanwhile (autovacuum, and
    any other client's queries)."""
    if not database_url.startswith("postgresql") or not any(
            host in database_url for host in ("@127.0.0.1", "@localhost")):
        return None
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            name, _, rest = stat.read_text().partition(") ")
            if name.endswith("(postgres"):
                fields = rest.split()
                # utime, stime, and those of its children that ended: the postmaster's
                # count the backends of connections already closed
                total += sum(int(f) for f in fields[11:15]) / tick
    return total


def _run_joined(k: int, n: int, database_url: str, port: int,
                args: argparse.Namespace) -> dict[str, Any]:
    """Plan, then ``k`` joiners at once: msg/s over the wall time, CPU summed."""
    _run_child("plan", n, database_url, port, args)
    started = time.perf_counter()
    procs = [subprocess.Popen(_command("join", n, database_url, port, args), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(k)]
    results = [_output(p, "join", *p.communicate()) for p in procs]
    elapsed = time.perf_counter() - started
    sent = sum(r["messages"] for r in results)
    assert sent == n, results
    cpu = sum(r["cpu_s"] for r in results)
    return {"senders": k, "messages": sent, "seconds": elapsed, "msg_per_s": sent / elapsed,
            "cpu_us_per_msg": cpu / sent * 1e6,
            "per_sender": [r["messages"] for r in results],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def _reset(database_url: str) -> None:
    """Back to "nobody was sent anything": the next send has every reader to do again."""
    from sqlalchemy import delete, update

    from digest.store.engine import make_engine
    from digest.store.models import Delivery, Edition, Subscriber

    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(Delivery))
        conn.execute(delete(Edition))
        conn.execute(update(Subscriber).values(last_digest_at=None))
    engine.dispose()


@contextlib.contextmanager
def _database(url: str, n: int, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a schema of its own in the given PostgreSQL database (created
    here and dropped afterwards, so the bench never touches anything else there)."""
    if url == "sqlite":
        yield f"sqlite:///{folder / f'bench-{n}.db'}"
        return
    if not url.startswith("postgresql"):
        yield url  # an empty database the caller made
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_send_{n}_{os.getpid()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _measure(url: str, n: int, ports: tuple[int, int], args: argparse.Namespace,
             folder: Path) -> dict[str, Any]:
    with _database(url, n, folder) as database_url:
        _seed(database_url, n)
        if args.plan_only:
            return {"n": n, "database": database_url.split(":")[0],
                    "plan": _run_child("plan", n, database_url, ports[0], args)}
        result: dict[str, Any] = {"n": n, "concurrency": args.concurrency,
                                  "database": database_url.split(":")[0], "join": []}
        # Rounds of ceiling, pipelined, lock-step, one after the other: this machine's speed
        # drifts by tens of percent within a minute, so a ratio is taken within each round
        # (measurements seconds apart) and the median run and median ratio are reported.
        rounds: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            _reset(database_url)  # the ceiling's sample digest is a first digest too
            if "ceiling" in args.kinds:
                rounds.setdefault("ceiling", []).append(
                    _run_child("ceiling", n, database_url, ports[0], args))
            for kind, port in (("pipelined", ports[0]), ("lock_step", ports[1])):
                if kind.replace("_", "-") in args.kinds:
                    _reset(database_url)
                    rounds.setdefault(kind, []).append(
                        _run_child("e2e", n, database_url, port, args))
        for kind, runs in rounds.items():
            result[kind] = _median(runs, lambda r: r["msg_per_s"])
            result[f"{kind}_rounds"] = runs
            if kind != "ceiling" and "ceiling" in rounds:
                ratios = [r["msg_per_s"] / c["msg_per_s"]
                          for r, c in zip(runs, rounds["ceiling"], strict=True)]
                result[f"ratio_{kind}"] = statistics.median(ratios)
                result[f"ratios_{kind}"] = ratios
        for k in args.join if database_url.startswith("postgresql") else ():
            _reset(database_url)
            result["join"].append(_run_joined(k, n, database_url, ports[0], args))
    return result


def _median(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]
            ) -> dict[str, Any]:
    """The run in the middle by ``key`` (the lower middle of an even number)."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def _line(result: dict[str, Any]) -> str:
    head = f"{result['database']:<20} N={result['n']:>9,}"
    if "plan" in result:
        plan = result["plan"]
        return (f"{head}  planned {plan['planned']:,} deliveries in {plan['seconds']:.1f} s "
                f"(CPU {plan['cpu_s']:.1f} s, peak RSS {plan['peak_rss_mb']:.0f} MB)")
    parts = []
    if "ceiling" in result:
        c = result["ceiling"]
        parts.append(f"ceiling (aiosmtplib) {c['msg_per_s']:7.0f} msg/s "
                     f"{c['cpu_us_per_msg']:5.0f} µs CPU/msg  message {c['message_bytes']:,} B")
    for kind in ("pipelined", "lock_step"):
        if kind in result:
            r = result[kind]
            ratio = ""
            if f"ratio_{kind}" in result:
                each = result[f"ratios_{kind}"]
                spread = (f" (rounds {min(each):.2f}-{max(each):.2f})" if len(each) > 1 else "")
                ratio = f"= {result[f'ratio_{kind}']:.2f} x ceiling{spread}  "
            server = (f"(+{r['server_cpu_us_per_msg']:.0f} µs server) "
                      if "server_cpu_us_per_msg" in r else "")
            parts.append(f"{kind.replace('_', '-'):<11} {r['msg_per_s']:7.0f} msg/s "
                         f"{r['cpu_us_per_msg']:5.0f} µs CPU/msg {server}{ratio}"
                         f"peak RSS {r['peak_rss_mb']:.0f} MB")
    for j in result["join"]:
        one = (f"= {j['msg_per_s'] / result['pipelined']['msg_per_s']:.2f} x one sender  "
               if "pipelined" in result else "")
        parts.append(f"--join x{j['senders']}   {j['msg_per_s']:7.0f} msg/s "
                     f"{j['cpu_us_per_msg']:5.0f} µs CPU/msg (all senders)  {one}"
                     f"split {j['per_sender']}")
    return f"{head}  " + f"\n{'':31}".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100,000)")
    parser.add_argument("--compare", type=int, default=10_000,
                        help="a second, smaller run to compare peak RSS (default 10,000)")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of ceiling, pipelined, lock-step (medians are shown)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                        help=f"DIGEST_BATCH_SIZE (default {_DEFAULTS.batch_size}, as a send's)")
    parser.add_argument("--max-per-connection", type=int, default=100)
    parser.add_argument("--databases", default=os.environ.get("BENCH_DATABASES", "sqlite"),
                        help="comma-separated: `sqlite` (a fresh file) and/or PostgreSQL URLs "
                             "(a schema the bench creates and drops); default sqlite "
                             "(env BENCH_DATABASES)")
    parser.add_argument("--join", default="", help="PostgreSQL: also N joined senders, e.g. 2,4")
    parser.add_argument("--kinds", default="ceiling,pipelined,lock-step",
                        help="which measurements (default all three); e.g. `--kinds pipelined "
                             "-n 1000000 --compare 100000` for peak RSS alone")
    parser.add_argument("--plan-only", action="store_true",
                        help="time planning N deliveries, send nothing")
    parser.add_argument("--return-path", default=None,
                        help="DIGEST_RETURN_PATH: a VERP envelope sender per message")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the end-to-end child")
    parser.add_argument("--child", choices=sorted(_KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.join = [int(k) for k in args.join.split(",") if k.strip()]
    args.kinds = {k.strip() for k in args.kinds.split(",")}
    if args.child:
        args.database_url = args.databases
        _child(args)
        return
    from digest.transport.sink import free_port

    ports = (free_port(), free_port())
    ready = multiprocessing.Event()
    responder = multiprocessing.Process(target=_serve, args=(ports, ready), daemon=True)
    responder.start()
    ready.wait(10)
    results: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"runs": results}
    try:
        with tempfile.TemporaryDirectory() as folder:
            sizes = [args.n] if args.no_compare or args.plan_only else [args.n, args.compare]
            for url in args.databases.split(","):
                for n in sizes:
                    results.append(_measure(url.strip(), n, ports, args, Path(folder)))
                    if not args.json:
                        print(_line(results[-1]), flush=True)
                if len(sizes) == 2 and "pipelined" in args.kinds:
                    big, small = results[-2]["pipelined"], results[-1]["pipelined"]
                    growth = big["peak_rss_mb"] - small["peak_rss_mb"]
                    summary.setdefault("rss_growth_mb", {})[results[-1]["database"]] = growth
                    if not args.json:
                        print(f"peak RSS (pipelined) at {args.n:,} is {growth:+.1f} MB vs "
                              f"{args.compare:,}", flush=True)
    finally:
        responder.terminate()
    if args.json:
        print(json.dumps(summary, indent=2))
    os.environ.pop("_", None)


if __name__ == "__main__":
    main()
