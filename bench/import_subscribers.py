"""Benchmark: `digest subscribers import` of a large CSV on SQLite.

Writes N rows (default 100,000) with a few hundred bad rows to a temporary folder, imports them
with the real CLI in a child process, and prints rows/s and the child's peak RSS; then does the
same at N/10 so the two peaks show whether memory grows with the file.

    python bench/import_subscribers.py [--rows 100000] [--bad 300]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ["Ana Bălan", "Ștefan Mureșan", "Ion Popescu", "Iulia Țurcanu", "Mihai Ionescu", "Dan"]
TOPICS = ["", "sport", "local,politica", "cultura", "economie,sport"]


def write_csv(path: Path, rows: int, bad: int) -> None:
    rng = random.Random(7)
    bad_lines = set(rng.sample(range(rows), bad))
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,topics,frequency\n")
        for i in range(rows):
            email = f"cititor{i}@exemplu{i % 50}.ro" if i not in bad_lines else f"stricat{i}@"
            freq = "weekly" if i % 7 == 0 else "daily"
            out.write(f'{email},{rng.choice(NAMES)},"{rng.choice(TOPICS)}",{freq}\n')


# The child reports its own peak RSS (ru_maxrss of RUSAGE_SELF) however the CLI exits.
CHILD = """
import resource, sys
from digest.cli import main
sys.argv = ["digest", *sys.argv[1:]]
try:
    main()
finally:
    print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


def run_import(folder: Path, rows: int, bad: int) -> tuple[float, float, str]:
    csv_path = folder / f"people-{rows}.csv"
    write_csv(csv_path, rows, bad)
    env = os.environ | {"DIGEST_DATABASE_URL": f"sqlite:///{folder / f'bench-{rows}.db'}"}
    subprocess.run([sys.executable, "-m", "digest", "init"], env=env, check=True,
                   capture_output=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, "subscribers", "import", str(csv_path)],
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    peak_line = [ln for ln in done.stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")][-1]
    peak_mb = int(peak_line.split("=")[1]) / 1024
    return elapsed, peak_mb, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bad", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = args.rows // 10
        s_elapsed, s_peak, s_summary = run_import(Path(tmp), small, args.bad // 10)
        elapsed, peak, summary = run_import(Path(tmp), args.rows, args.bad)
    print(f"{small:>7} rows: {s_elapsed:6.2f} s  {small / s_elapsed:8.0f} rows/s  "
          f"peak RSS {s_peak:6.1f} MB  ({s_summary})")
    print(f"{args.rows:>7} rows: {elapsed:6.2f} s  {args.rows / elapsed:8.0f} rows/s  "
          f"peak RSS {peak:6.1f} MB  ({summary})")
    print(f"RSS growth from {small} to {args.rows} rows: {peak - s_peak:+.1f} MB")


if __name__ == "__main__":
    main()
