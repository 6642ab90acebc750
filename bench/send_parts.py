"""Benchmark: where a send's CPU goes -- the wire and the sender side, each on its own.

    python bench/send_parts.py                  # 20,000 messages, SQLite
    python bench/send_parts.py -n 20000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test

``bench/send.py`` measures ``digest send`` end to end. This splits it, each part in a fresh
child process (its own CPU time):

- **transport**: ``SmtpPool`` sending N pre-built 25 KB jobs to the PIPELINING responder of
  ``bench/send.py`` (no database, no rendering), next to the aiosmtplib ceiling on the same
  responder;
- **sender**: ``send_digest`` for N readers with the SMTP pool replaced by one that answers
  250 at once, in process (claim, compose, render, journal, record, ledger; no sockets). The
  edition is planned first, outside the timing.

Their CPU per message roughly adds up to the end-to-end figure (less, in fact: inside a real
send each piece runs colder, its code interleaved with the other's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import send as whole  # bench/send.py: the responder, settings, seeding, the ceiling


def _transport(settings: Any, n: int) -> dict[str, Any]:
    from digest.transport.pool import Job, SmtpPool
    from digest.transport.replies import Reply

    body = (b"X" * 76 + b"\r\n") * (25_000 // 78) + b".\r\n"
    numbers = iter(range(n))
    sent = 0

    def next_job() -> Job | None:
        i = next(numbers, None)
        return None if i is None else Job(i, "stiri@example.ro", f"c{i}@example.ro", body)

    def on_result(_job: Job, _reply: Reply) -> None:
        nonlocal sent
        sent += 1

    cpu, started = whole._cpu_s(), time.perf_counter()
    asyncio.run(SmtpPool(settings).run(next_job, on_result))
    assert sent == n
    return whole._result(n, time.perf_counter() - started, whole._cpu_s() - cpu)


class _AnsweringPool:
    """Stands in for ``SmtpPool``: every job answered 250 at once, four workers."""

    def __init__(self, _settings: Any) -> None:
        self.error: BaseException | None = None
        self.reconnects = 0

    def stop(self, error: BaseException) -> None:
        self.error = self.error or error

    async def run(self, next_job: Any, on_result: Any, **_: Any) -> None:
        from digest.transport.job_source import Job
        from digest.transport.replies import Outcome, Reply

        ok = Reply(Outcome.SENT, 250, "2.0.0 OK")

        async def worker() -> None:
            while self.error is None:
                job = next_job()
                if job is not None and not isinstance(job, Job):
                    job = await job
                if job is None:
                    return
                on_result(job, ok)
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(4)))
        if self.error is not None:
            raise self.error


def _sender(settings: Any, n: int) -> dict[str, Any]:
    import digest.run.sender as sender_module
    from digest.run.commands import SendOptions, plan_editions, send_digest
    from digest.run.report import RunReport
    from digest.store.engine import make_engine

    sender_module.SmtpPool = _AnsweringPool  # type: ignore[misc,assignment]
    engine = make_engine(settings.database_url)
    plan_editions(engine, settings, SendOptions(), RunReport())
    cpu, started = whole._cpu_s(), time.perf_counter()
    report = send_digest(engine, settings)
    assert report.sent == n and report.error is None, report.as_dict()
    return whole._result(n, time.perf_counter() - started, whole._cpu_s() - cpu)


_PARTS = {"ceiling": whole._ceiling, "transport": _transport, "sender": _sender}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--child", choices=sorted(_PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = argparse.Namespace(concurrency=4, batch_size=500, max_per_connection=100,
                                 return_path=None)
    if args.child:
        settings = whole._settings(args.database, args.port, options)
        print(json.dumps(_PARTS[args.child](settings, args.n)))
        return
    from digest.transport.sink import free_port

    ports = (free_port(), free_port())
    ready = multiprocessing.Event()
    responder = multiprocessing.Process(target=whole._serve, args=(ports, ready), daemon=True)
    responder.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as folder:
            for part in ("ceiling", "transport", "sender"):
                (Path(folder) / part).mkdir()  # a fresh SQLite file (or schema) per part
                with whole._database(args.database, args.n, Path(folder) / part) as url:
                    whole._seed(url, args.n)
                    done = subprocess.run(
                        [sys.executable, __file__, "--child", part, "-n", str(args.n),
                         "--database", url, "--port", str(ports[0])],
                        capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{part} failed:\n{done.stderr}")
                    r = json.loads(done.stdout.strip().splitlines()[-1])
                    print(f"{part:<10} {r['msg_per_s']:7.0f} msg/s "
                          f"{r['cpu_us_per_msg']:5.0f} µs CPU/msg", flush=True)
    finally:
        responder.terminate()


if __name__ == "__main__":
    main()
