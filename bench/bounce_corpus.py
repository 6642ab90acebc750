"""How many of the real bounce messages in tests/data/bounces digest recognizes, per MTA family.

    python bench/bounce_corpus.py            # a table: family, recognized/total, agreeing/total
    python bench/bounce_corpus.py --json
    python bench/bounce_corpus.py --verbose  # every message whose kind differs from the source's

"Recognized" means the message was read as a bounce, complaint or auto-reply (not
``unrecognized``); for the negative samples (expected ``unknown``) any answer that changes
nothing counts. "Agreeing" means the kind also equals the one the source project expects
(flufl.bounce's or sisimai's table; sisimai's "soft" includes 5.x.x policy blocks, which we
also show as soft). Parsing only -- no database.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from digest.feedback.parse import parse_message

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"
QUIET = {"auto-reply", "unrecognized"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    rows = list(csv.DictReader((DATA / "SOURCES.tsv").open(encoding="utf-8"), delimiter="\t"))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        report = parse_message((DATA / row["filename"]).read_bytes())
        got, expected = report.kind.shown, row["expected"]
        if expected == "unknown":
            recognized = agrees = got in QUIET or report.kind.value == "policy"
        else:
            recognized = got != "unrecognized"
            agrees = got == expected or (expected.startswith("mixed") and got in ("hard", "soft"))
        family = counts[row["mta_family"]]
        family[0] += 1
        family[1] += recognized
        family[2] += agrees
        if args.verbose and not agrees:
            print(f"{row['filename']}: expected {expected}, got {got} ({report.source.value})")
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    if args.json:
        print(json.dumps({"families": {k: {"total": v[0], "recognized": v[1], "agreeing": v[2]}
                                       for k, v in sorted(counts.items())},
                          "total": total[0], "recognized": total[1], "agreeing": total[2]}))
        return
    print(f"{'family':18} {'recognized':>12} {'agreeing':>10}")
    for family, (n, recognized, agreeing) in sorted(counts.items()):
        print(f"{family:18} {recognized:>5} / {n:<4} {agreeing:>4} / {n}")
    print(f"{'all':18} {total[1]:>5} / {total[0]:<4} {total[2]:>4} / {total[0]}")


if __name__ == "__main__":
    main()
