"""``bench/send.py`` still runs and reports what the issue asks of it: a small run (200 readers,
one round) on this suite's database -- a fresh SQLite file, or a schema of its own in the
PostgreSQL of DIGEST_TEST_DATABASE_URL -- end to end with and without PIPELINING, next to the
aiosmtplib ceiling, each with CPU per message and peak RSS (and the server's CPU per message
for a PostgreSQL on this machine). The figures themselves are the bench's to show, not a
test's to judge: only that each one was measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG_URL

BENCH = Path(__file__).resolve().parent.parent / "bench" / "send.py"


def test_the_send_bench_measures_every_figure() -> None:
    database = PG_URL or "sqlite"
    done = subprocess.run([sys.executable, str(BENCH), "-n", "200", "--no-compare",
                           "--rounds", "1", "--databases", database, "--json"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["n"] == 200
    for kind in ("ceiling", "pipelined", "lock_step"):
        figures = run[kind]
        assert figures["messages"] == 200, (kind, figures)
        assert figures["msg_per_s"] > 0 and figures["cpu_us_per_msg"] > 0, (kind, figures)
        assert figures["peak_rss_mb"] > 0, (kind, figures)
    for kind in ("pipelined", "lock_step"):
        assert run[f"ratio_{kind}"] == run[kind]["msg_per_s"] / run["ceiling"]["msg_per_s"]
        local_pg = PG_URL is not None and ("@127.0.0.1" in PG_URL or "@localhost" in PG_URL)
        assert ("server_cpu_us_per_msg" in run[kind]) is local_pg, run[kind]
