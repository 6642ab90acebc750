"""Benchmark: planning by the schedule, 100,000 readers across 30 timezones.

    python bench/plan.py                     # 100,000 readers, SQLite file in a temp folder
    python bench/plan.py -n 20000 --zones 1  # the same readers all in one timezone
    python bench/plan.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

Readers get a timezone round-robin from a list of 30 (UTC-12 to UTC+14), a random send hour
(or none) and a random frequency. Then 24 hourly runs of the planner (``plan_editions``, what
``digest run`` does before sending) over a Monday, each followed by a second run in the same
hour (everything already planned: the cost of an hourly cron with nothing new). Prints the
seconds per run (median, max) and the deliveries planned. A PostgreSQL URL must name an empty
database (its tables are created and left).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from digest.config.settings import Settings  # noqa: E402
from digest.run.commands import SendOptions, plan_editions  # noqa: E402
from digest.run.report import RunReport  # noqa: E402
from digest.store.engine import make_engine, upgrade  # noqa: E402
from digest.store.models import Frequency, Subscriber, SubscriberStatus  # noqa: E402
from tests.test_schedule_plan import ZONES  # noqa: E402


def seed(url: str, n: int, zones: int) -> None:
    rng = random.Random(11)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(insert(Subscriber), [
                {"email": f"r{i}@example.org", "status": SubscriberStatus.ACTIVE, "topics": [],
                 "frequency": rng.choice(list(Frequency)), "timezone": ZONES[i % zones],
                 "send_hour": rng.choice([None, *range(24)]), "plain_text_only": False,
                 "created_at": now, "updated_at": now, "confirmed_at": now}
                for i in range(start, min(start + 10_000, n))])
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100,000)")
    parser.add_argument("--zones", type=int, default=len(ZONES), help="timezones (max 30)")
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'plan.db'}"
        seed(url, args.n, min(args.zones, len(ZONES)))
        settings = Settings(database_url=url, lock_dir=Path(folder))
        engine = make_engine(url)
        first, again, planned = [], [], 0
        start = dt.datetime(2026, 12, 6, 22, tzinfo=dt.UTC)  # Monday 7 December, UTC+14 first
        for hour in range(24):
            at = start + dt.timedelta(hours=hour)
            for runs in (first, again):
                report = RunReport()
                began = time.perf_counter()
                plan_editions(engine, settings, SendOptions(schedule=True, at=at), report)
                runs.append(time.perf_counter() - began)
                planned += report.planned
        engine.dispose()
    print(f"{args.n:,} readers in {min(args.zones, len(ZONES))} timezones, "
          f"{engine.dialect.name}: {planned:,} deliveries planned in 24 hourly runs")
    for name, runs in (("planning run", first), ("same hour again", again)):
        print(f"  {name}: median {statistics.median(runs) * 1000:.0f} ms, "
              f"max {max(runs) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
