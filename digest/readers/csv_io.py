"""CSV import and CSV/JSON export of subscribers, streamed in chunks.

Import reads the file row by row and works in chunks of ``CHUNK`` rows: one query finds which
addresses exist, one finds which are suppressed, one multi-row INSERT adds the new ones, one
bulk UPDATE changes the rest. Memory therefore stays flat however long the file is, and the
store sees a handful of statements per thousand rows. Each chunk commits on its own, so an
interrupted import keeps what it did and a rerun continues (rows already in are "unchanged").

Consent matters more than the file: an existing subscriber's status is never changed by an
import (an unsubscribed reader stays unsubscribed), and a suppressed address is refused.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import DigestError, InvalidInput
from digest.problems import Problem, ProblemLog
from digest.readers.addresses import email_hash, normalize_email
from digest.readers.lifecycle import (
    as_dict,
    parse_frequency,
    parse_send_hour,
    parse_status,
    parse_timezone,
    suppression_key,
)
from digest.store.models import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
    utcnow,
)
from digest.topics import parse_topics

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

    def summary(self) -> str:
        return (f"imported {self.imported}, updated {self.updated}, unchanged {self.unchanged}, "
                f"invalid {self.invalid}, suppressed {self.suppressed}")

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


def _open_csv(handle: TextIO) -> csv.DictReader[str]:
    header = handle.readline()
    if not header.strip():
        raise InvalidInput("The CSV file is empty.",
                           "the first line must be a header, e.g. email,name")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    names = [h.strip().lower() for h in next(csv.reader([header], delimiter=delimiter))]
    if "email" not in names:
        raise InvalidInput(f"The CSV header has no `email` column (found: {', '.join(names)}).",
                           "add a header row whose columns include email, e.g. email,name,topics")
    reader = csv.DictReader(handle, fieldnames=names, delimiter=delimiter)
    return reader


def _parse_row(line: int, raw: dict[str | Any, Any], default_status: SubscriberStatus) -> _Row:
    def cell(key: str) -> str | None:
        value = raw.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    email = normalize_email(cell("email") or "")
    values: dict[str, Any] = {}
    if "name" in raw:
        values["name"] = cell("name")
    if "topics" in raw:
        values["topics"] = parse_topics(cell("topics"))
    if "frequency" in raw:
        values["frequency"] = parse_frequency(cell("frequency"))
    if "timezone" in raw:
        values["timezone"] = parse_timezone(cell("timezone"))
    if "send_hour" in raw:
        values["send_hour"] = parse_send_hour(cell("send_hour"))
    if "locale" in raw:
        values["locale"] = cell("locale")
    status = cell("status")
    return _Row(line, email, values, parse_status(status) if status else default_status)


def _rows(reader: csv.DictReader[str], default_status: SubscriberStatus,
          report: ImportReport, on_problem: Callable[[Problem], None]) -> Iterator[_Row]:
    for raw in reader:
        line = reader.line_num + 1  # the header was read before the reader started
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # blank line
        try:
            yield _parse_row(line, raw, default_status)
        except DigestError as exc:
            problem = Problem(f"line {line}", exc.message)
            report.add_problem(problem)
            on_problem(problem)


def _apply_chunk(session: Session, chunk: list[_Row], key: bytes, source: str,
                 report: ImportReport, on_problem: Callable[[Problem], None]) -> None:
    unique: dict[str, _Row] = {}
    for row in chunk:  # a later duplicate in the same chunk is the same subscriber
        if row.email in unique:
            unique[row.email].values.update(row.values)
        else:
            unique[row.email] = row
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
    new_rows, changes = [], []
    for email, row in unique.items():
        current = existing.get(email)
        if current is None:
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
        session.execute(insert(ConsentEvent), [
            {"subscriber_id": i, "kind": ConsentKind.IMPORT, "at": now, "source": "import",
             "detail": source} for i in ids])
        report.imported += len(ids)
    if changes:
        session.execute(update(Subscriber), changes)
        report.updated += len(changes)


def import_subscribers(
    sessions: sessionmaker[Session], path: Path, *,
    default_status: SubscriberStatus = SubscriberStatus.ACTIVE,
    on_problem: Callable[[Problem], None] = lambda p: None,
) -> ImportReport:
    """Import ``path``; report each bad row through ``on_problem``; return the counts."""
    report = ImportReport()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = _open_csv(handle)
            with sessions.begin() as session:
                key = suppression_key(session)
            chunk: list[_Row] = []
            for row in _rows(reader, default_status, report, on_problem):
                chunk.append(row)
                if len(chunk) >= CHUNK:
                    with sessions.begin() as session:
                        _apply_chunk(session, chunk, key, path.name, report, on_problem)
                    chunk = []
            if chunk:
                with sessions.begin() as session:
                    _apply_chunk(session, chunk, key, path.name, report, on_problem)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}).",
                           "save the file as CSV UTF-8 and import it again; rows before "
                           "the bad byte were imported") from None
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
