"""CSV import and CSV/JSON export of subscribers, streamed in chunks.

Import reads the file row by row and works in chunks of ``CHUNK`` rows: one query finds which
addresses exist, one finds which are suppressed, one multi-row INSERT adds the new ones, one
bulk UPDATE changes the rest. Memory therefore stays nearly flat however long the file is (a
small digest per address, to report a row that repeats an earlier one), and the store sees a
handful of statements per thousand rows. ``readers.csv_read`` splits the file into records, so
that an over-long line, bad UTF-8 or an unclosed quote costs one row, not the import. Each
chunk commits on its own, so an interrupted import keeps what it did and a rerun continues
(rows already in are "unchanged").

Consent matters more than the file: an existing subscriber's status is never changed by an
import (an unsubscribed reader stays unsubscribed), and a suppressed address is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import DigestError, InvalidInput
from digest.problems import Problem, ProblemLog
from digest.readers.addresses import accept_address, clean_text, email_hash
from digest.readers.csv_read import CsvRecords
from digest.readers.fields import (
    clean_topics,
    parse_frequency,
    parse_send_hour,
    parse_status,
    parse_timezone,
)
from digest.readers.lifecycle import as_dict, suppression_key
from digest.store.models import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
    utcnow,
)

__all__ = ["EXPORT_COLUMNS", "ImportReport", "Problem", "export_subscribers", "import_subscribers"]

CHUNK = 1000
EXPORT_COLUMNS = ["email", "name", "status", "topics", "frequency", "timezone", "send_hour",
                  "locale", "created_at"]


@dataclass
class ImportReport(ProblemLog):
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    duplicates: int = 0  # rows whose address an earlier row of the same file already had

    def summary(self) -> str:
        return (f"imported {self.imported}, updated {self.updated}, unchanged {self.unchanged}, "
                f"invalid {self.invalid}, duplicate {self.duplicates}, "
                f"suppressed {self.suppressed}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [str(p) for p in self.problems]
        return data


@dataclass
class _Row:
    line: int
    email: str
    values: dict[str, Any]  # only the optional columns the file has
    status: SubscriberStatus
    status_from: str  # "column" or "--status": recorded with the consent event


def _parse_row(line: int, raw: dict[str, str | None], default_status: SubscriberStatus,
               allow_reserved: bool) -> _Row:
    def cell(key: str) -> str | None:
        return clean_text(raw.get(key))

    email = accept_address(cell("email") or "", allow_reserved=allow_reserved)
    values: dict[str, Any] = {}
    if "name" in raw:
        values["name"] = cell("name")
    if "topics" in raw:
        values["topics"] = clean_topics(cell("topics"))
    if "frequency" in raw:
        values["frequency"] = parse_frequency(cell("frequency"))
    if "timezone" in raw:
        values["timezone"] = parse_timezone(cell("timezone"))
    if "send_hour" in raw:
        values["send_hour"] = parse_send_hour(cell("send_hour"))
    if "locale" in raw:
        values["locale"] = cell("locale")
    status = cell("status")
    if status:
        return _Row(line, email, values, parse_status(status), "column")
    return _Row(line, email, values, default_status, "--status")


class _Seen:
    """The first line of every address in the file, to report a row that repeats one.

    Kept as 64-bit digests, about 100 bytes an address whatever its length (10 MB for 100,000
    rows); two addresses of one million-row file sharing a digest is a 1-in-10^7 event."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}

    def repeats(self, row: _Row) -> int | None:
        key = int.from_bytes(hashlib.blake2b(row.email.encode(), digest_size=8).digest())
        first = self.first.setdefault(key, row.line)
        return None if first == row.line else first


def _rows(records: CsvRecords, default_status: SubscriberStatus, allow_reserved: bool,
          report: ImportReport, on_problem: Callable[[Problem], None]) -> Iterator[_Row]:
    names, seen = records.names, _Seen()
    for record in records:
        if not any(v.strip() for v in record.fields):
            continue  # blank line
        raw: dict[str, str | None] = dict(zip(names, record.fields, strict=False))
        for name in names[len(record.fields):]:
            raw[name] = None  # a short row: the missing columns are empty
        try:
            row = _parse_row(record.line, raw, default_status, allow_reserved)
        except DigestError as exc:
            _problem(report, on_problem, Problem(f"line {record.line}", exc.message))
            continue
        first = seen.repeats(row)
        if first is not None:
            report.duplicates += 1
            on_problem(Problem(f"line {row.line}", f"{row.email} repeats line {first}; "
                                                   f"skipped (the first row is kept)"))
            continue
        yield row


def _problem(report: ImportReport, on_problem: Callable[[Problem], None],
             problem: Problem) -> None:
    report.add_problem(problem)
    on_problem(problem)


def _apply_chunk(session: Session, chunk: list[_Row], key: bytes, source: str,
                 report: ImportReport, on_problem: Callable[[Problem], None]) -> None:
    unique = {row.email: row for row in chunk}  # _rows let no address through twice
    hashes = {email_hash(key, e): e for e in unique}
    for h in session.scalars(select(Suppression.email_hash)
                             .where(Suppression.email_hash.in_(list(hashes)))):
        row = unique.pop(hashes[h])
        report.suppressed += 1
        on_problem(Problem(f"line {row.line}",
                           f"{row.email} is suppressed (erased or bounced); skipped"))
    existing = {s.email: s for s in session.scalars(
        select(Subscriber).where(Subscriber.email.in_(list(unique))))}
    now = utcnow()
    new_rows, added, changes = [], [], []
    for email, row in unique.items():
        current = existing.get(email)
        if current is None:
            added.append(row)
            new_rows.append({
                "email": email, "name": row.values.get("name"),
                "topics": row.values.get("topics", []),
                "frequency": row.values.get("frequency", parse_frequency(None)),
                "timezone": row.values.get("timezone"), "locale": row.values.get("locale"),
                "send_hour": row.values.get("send_hour"),
                "status": row.status, "plain_text_only": False, "created_at": now,
                "updated_at": now,
                "confirmed_at": now if row.status is SubscriberStatus.ACTIVE else None,
            })
            continue
        diff = {k: v for k, v in row.values.items() if getattr(current, k) != v}
        if diff:
            changes.append({"id": current.id, "updated_at": now, **diff})
        else:
            report.unchanged += 1
    if new_rows:
        ids = session.scalars(insert(Subscriber).returning(Subscriber.id), new_rows).all()
        # The status the import gave, and where it came from: an audit can tell an opted-in
        # list (active) from one still awaiting confirmation (pending).
        session.execute(insert(ConsentEvent), [
            {"subscriber_id": i, "kind": ConsentKind.IMPORT, "at": now, "source": "import",
             "detail": f"file={source}; status={row.status.value} (from {row.status_from}); "
                       f"line {row.line}"}
            for i, row in zip(ids, added, strict=True)])
        report.imported += len(ids)
    if changes:
        session.execute(update(Subscriber), changes)
        report.updated += len(changes)


def import_subscribers(
    sessions: sessionmaker[Session], path: Path, *,
    default_status: SubscriberStatus = SubscriberStatus.ACTIVE, allow_reserved: bool = False,
    on_problem: Callable[[Problem], None] = lambda p: None,
) -> ImportReport:
    """Import ``path``; report each bad row through ``on_problem``; return the counts.
    ``allow_reserved`` is ``DIGEST_ALLOW_RESERVED_DOMAINS``."""
    report = ImportReport()
    with path.open("rb") as handle:
        records = CsvRecords(handle, lambda p: _problem(report, on_problem, p))
        if "email" not in records.names:
            raise InvalidInput(
                f"The CSV header has no `email` column (found: {', '.join(records.names)}).",
                "add a header row whose columns include email, e.g. email,name,topics")
        with sessions.begin() as session:
            key = suppression_key(session)
        chunk: list[_Row] = []
        for row in _rows(records, default_status, allow_reserved, report, on_problem):
            chunk.append(row)
            if len(chunk) >= CHUNK:
                with sessions.begin() as session:
                    _apply_chunk(session, chunk, key, path.name, report, on_problem)
                chunk = []
        if chunk:
            with sessions.begin() as session:
                _apply_chunk(session, chunk, key, path.name, report, on_problem)
    return report


def export_subscribers(sessions: sessionmaker[Session], path: Path | None, fmt: str) -> int:
    """Write every subscriber to ``path`` (stdout when None); return how many."""
    out: io.TextIOWrapper = (
        path.open("w", encoding="utf-8", newline="") if path is not None
        else io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True))
    count = 0
    try:
        with sessions() as session:
            query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
            if fmt == "json":
                out.write("[")
                for sub in session.scalars(query):
                    out.write(("," if count else "") + "\n  "
                              + json.dumps(as_dict(sub), ensure_ascii=False))
                    count += 1
                out.write("\n]\n" if count else "]\n")
            else:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(EXPORT_COLUMNS)
                for sub in session.scalars(query):
                    data = as_dict(sub)
                    data["topics"] = ",".join(data["topics"])
                    writer.writerow(["" if data[c] is None else data[c] for c in EXPORT_COLUMNS])
                    count += 1
    finally:
        if path is not None:
            out.close()
        else:
            out.flush()
            out.detach()
    return count
