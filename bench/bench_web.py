"""Reader web app figures: sequential requests against ``create_app`` on a real uvicorn server.

Run from the repository root:  .venv/bin/python -m bench.bench_web [--requests 300]

Uses a throwaway SQLite database and an SMTP port where nothing listens (the confirmation send
fails at once after the answer, as it would with a dead relay), and prints requests per second
and p50/p95 latency for the sign-up form, an unsubscribe page, the one-click POST and sign-up.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import httpx

from digest.config.settings import Settings, SmtpSecurity
from digest.render.tokens import Purpose, make_token
from digest.web.security import RateLimiter
from tests.conftest import SECRET, free_port
from tests.web_support import add_reader, run_server

Request = tuple[str, str, dict[str, str] | None]


def _measure(client: httpx.Client, name: str, requests: list[Request]) -> None:
    latencies = []
    start = time.perf_counter()
    for method, url, data in requests:
        t = time.perf_counter()
        answer = client.request(method, url, data=data)
        latencies.append(time.perf_counter() - t)
        assert answer.status_code == 200, (name, answer.status_code)
    total = time.perf_counter() - start
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    print(f"{name:24s} n={len(latencies)}  {len(latencies) / total:6.0f} req/s  "
          f"p50 {p50 * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    n = parser.parse_args().requests
    logging.getLogger("digest.web").setLevel(logging.ERROR)  # the failed sends, on purpose
    folder = Path(tempfile.mkdtemp())
    settings = Settings(database_url=f"sqlite:///{folder}/bench.db", secret_key=SECRET,
                        base_url="https://news.example.ro/digest", smtp_host="127.0.0.1",
                        smtp_port=free_port(), smtp_security=SmtpSecurity.NONE, smtp_timeout=1)
    with run_server(settings, limiter=RateLimiter(limit=10**9)) as server:
        ids = [add_reader(server.sessions, f"r{i}@example.ro") for i in range(n)]
        unsubscribe = [f"{server.base}/unsubscribe/{make_token(SECRET, Purpose.UNSUBSCRIBE, i)}"
                       for i in ids]
        with httpx.Client() as client:
            _measure(client, "GET /", [("GET", f"{server.base}/", None)] * n)
            _measure(client, "GET /unsubscribe/{t}", [("GET", u, None) for u in unsubscribe])
            _measure(client, "POST one-click", [
                ("POST", u, {"List-Unsubscribe": "One-Click"}) for u in unsubscribe])
            _measure(client, "POST /subscribe (new)", [
                ("POST", f"{server.base}/subscribe", {"email": f"n{i}@example.ro"})
                for i in range(n)])


if __name__ == "__main__":
    main()
