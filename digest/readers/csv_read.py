"""Reading a subscriber CSV as real exports come: one record at a time, each bad line reported
with its number, and the lines after it read on.

The file is read in binary, a physical line at a time, so that one fault stays on its line:

- a line over ``MAX_LINE_BYTES`` (csv's own field limit, 128 KiB) is skipped without being held
  in memory -- a 1 GB line costs 128 KiB;
- a line that is not UTF-8 is skipped, the lines around it are decoded on their own;
- a quoted field may run over several lines (a postal address), but one whose quote is still
  open after ``MAX_RECORD_LINES`` lines, or at the end of the file, is an unclosed quote: its
  first line is reported and the lines after it are read again as records of their own, so a
  stray ``"`` costs one row, not the rest of the file.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from digest.config.errors import InvalidInput
from digest.problems import Problem

__all__ = ["MAX_LINE_BYTES", "MAX_RECORD_LINES", "UTF8_HINT", "CsvRecords", "Record"]

MAX_LINE_BYTES = 128 * 1024
MAX_RECORD_LINES = 20
UTF8_HINT = ("save the file as CSV UTF-8 and import it again (rows already imported stay as "
             "they are)")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    line: int  # the physical line the record starts on (the header is line 1)
    fields: list[str]


def _physical_lines(handle: BinaryIO, bad: Callable[[int, str], None]
                    ) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line that is short enough and UTF-8; ``bad`` hears of the
    others."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # drop the rest of it, a chunk at a time
                raw = handle.readline(MAX_LINE_BYTES)
            bad(number, f"the line is longer than {MAX_LINE_BYTES // 1024} KiB; skipped")
            continue
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad(number, f"not UTF-8 text (byte 0x{raw[exc.start]:02X} at column "
                        f"{exc.start + 1}); skipped: {UTF8_HINT}")


class _Feed:
    """The lines csv.reader pulls, with the lines of the current record kept so that they can
    be given back, and a cut after ``MAX_RECORD_LINES`` lines."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self.lines = lines
        self.again: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []
        self.ran_out = False  # the current record needed a line it could not have

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            self.ran_out = True
            raise StopIteration
        item = self.again.popleft() if self.again else next(self.lines, None)
        if item is None:
            self.ran_out = True
            raise StopIteration
        self.taken.append(item)
        return item[1]

    def take(self) -> list[tuple[int, str]]:
        taken, self.taken, self.ran_out = self.taken, [], False
        return taken

    def give_back(self, lines: list[tuple[int, str]]) -> None:
        self.again.extendleft(reversed(lines))


class CsvRecords:
    """The header (``names``, ``delimiter``) and then the records of a subscriber CSV."""

    def __init__(self, handle: BinaryIO, on_bad: Callable[[Problem], None]) -> None:
        self.on_bad = on_bad
        self.lines = _physical_lines(handle, self._bad)
        self._header_problem: str | None = None
        first = next(self.lines, None)
        if first is None or first[0] != 1:
            if self._header_problem is not None:
                raise InvalidInput(f"The CSV header (line 1) cannot be read: "
                                   f"{self._header_problem}", UTF8_HINT)
            raise InvalidInput("The CSV file is empty.",
                               "the first line must be a header, e.g. email,name")
        header = first[1]
        if not header.strip():
            raise InvalidInput("The CSV file is empty.",
                               "the first line must be a header, e.g. email,name")
        self.delimiter = ";" if header.count(";") > header.count(",") else ","
        self.names = [h.strip().lower()
                      for h in next(csv.reader([header], delimiter=self.delimiter))]

    def _bad(self, line: int, reason: str) -> None:
        if line == 1:
            self._header_problem = reason
            return
        self.on_bad(Problem(f"line {line}", reason))

    def __iter__(self) -> Iterator[Record]:
        feed = _Feed(self.lines)
        while True:
            reader = csv.reader(feed, delimiter=self.delimiter)
            try:
                for fields in reader:
                    ran_out = feed.ran_out
                    taken = feed.take()
                    if ran_out and taken:  # the quote was still open when the lines ended
                        self._unclosed(feed, taken)
                        break  # a fresh reader for the lines given back
                    if taken:
                        yield Record(taken[0][0], fields)
                else:
                    return
            except csv.Error as exc:
                taken = feed.take()
                if not taken:  # cannot happen (csv fails on a line it read): never spin
                    return
                self._bad(taken[0][0], f"not CSV ({exc}); skipped")
                feed.give_back(taken[1:])

    def _unclosed(self, feed: _Feed, taken: list[tuple[int, str]]) -> None:
        self._bad(taken[0][0], f"a quoted field starts here and is not closed within "
                               f"{MAX_RECORD_LINES} lines; skipped (the lines after it are "
                               f"read on their own)")
        feed.give_back(taken[1:])
