"""The reply journal: what makes a crash resend only the messages truly in flight.

Every SMTP reply is appended to this sender's journal -- one line copied into the segment file,
which is memory-mapped (``MAP_SHARED``), no fsync -- before the next message goes out on that
connection (``transport.pool`` hands the reply over first). A SIGKILL keeps what was written:
the kernel's page cache belongs to the file, not to the process; the zeroed, unused end of a
segment left by a crash is no line and is skipped. Only a crash of the machine itself can lose
the last lines (then the bound is the one of the group commits, see ``run.result_writer``).
The ledger is still written in group commits; the journal only has to cover what is not
committed yet.

**Crash bound.** After a SIGKILL at any moment, the next ``digest send`` (or ``--join``) on the
same machine reconciles the dead sender's journal into the ledger first (``reconcile``), so it
resends only messages whose reply was never read: at most one per connection,
``DIGEST_SEND_CONCURRENCY``, each with the same Message-ID. Nothing is lost: a reply that was
never journaled leaves its row ``sending``, and it is sent again.

**Where.** A folder next to the run lock file (``<lock file>.journal``: beside the SQLite file,
or in ``DIGEST_LOCK_DIR``), one journal per sender process, named after its claimant name
(``delivery.presence``): ``<worker>.lock`` is held with ``flock`` while the sender lives and its
replies go to ``<worker>.<n>.jsonl`` segments. A segment is deleted once the ledger has committed
every reply in it, and the whole journal when the sender ends cleanly. ``reconcile`` takes only
journals whose lock it can take, i.e. of senders that are gone, so ``--join`` senders never mix.

Reconciling is idempotent: a reply is applied only to a row that is still ``sending`` for that
claimant, or ``pending`` (given back at start by ``reclaim_orphans``); applying it twice changes
nothing the second time. It works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import mmap
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, or_, select

from digest.delivery.claims import Claim
from digest.delivery.results import Recorder
from digest.store.models import Delivery, DeliveryState
from digest.transport.replies import Outcome, Reply, reply_hint

__all__ = ["Journal", "journal_folder", "reconcile", "record"]

D = cast(Table, Delivery.__table__)
SEGMENT_BYTES = 4 * 1024 * 1024  # a new segment after this much: old ones can be deleted
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once, not per line


def _json_string(value: str) -> str:
    """``value`` as a JSON string; a Message-ID (printable ASCII) needs no escape but these."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return _LINE.encode(value)


def journal_folder(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".journal")


def record(recorder: Recorder, c: Claim, reply: Reply, cutoff: dt.datetime, message_id: str,
           article_ids: Iterable[int]) -> None:
    """Turn one reply into its ledger result (the send and the reconcile alike)."""
    if reply.outcome is Outcome.SENT:
        recorder.sent(c, cutoff, message_id, reply.code, reply.line, tuple(article_ids))
    elif reply.outcome is Outcome.DEFERRED:
        recorder.deferred(c, reply.code, reply.line)
    elif reply.outcome is Outcome.ABORT:
        recorder.release(c, reply.code, reply.line)
    elif reply.outcome is Outcome.WITHDRAWN:  # the reader left while the message was queued
        recorder.skipped(c, "the subscriber is no longer active")
    else:
        hint = reply_hint(reply)  # e.g. too large: the operator's to fix, not the reader's
        recorder.failed(c, reply.code, reply.line if hint is None
                        else f"{reply.line} (hint: {hint})",
                        bounce=reply.outcome is Outcome.FAILED_ADDRESS)


class Journal:
    """This sender's journal: ``write`` a reply, ``committed`` when the ledger caught up."""

    def __init__(self, folder: Path, worker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.worker = folder, worker
        self._name = _UNSAFE.sub("_", worker)
        self._lock = os.open(folder / f"{self._name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: never held
        os.write(self._lock, worker.encode())  # the claimant name, for reconcile
        self.count = 0  # replies written so far
        # JSON-encoded once: the last cutoff and reply text (a send repeats them for nearly
        # every line) and each distinct article list (one per digest; readers of several
        # digests alternate), so each line is one f-string instead of a JSON encoder pass.
        self._cutoff: tuple[dt.datetime | None, str] = (None, "")
        self._text: tuple[str | None, str] = (None, "")
        self._ids: dict[tuple[int, ...], str] = {}
        self._closed: list[tuple[Path, int]] = []  # full segments and their last count
        self._segment = 0
        self._map: mmap.mmap | None = None
        self._fd, self._path = self._open_segment()

    def _open_segment(self) -> tuple[int, Path]:
        """The next segment, its blocks allocated and mapped: a line is then a copy into
        the page cache, no system call (which also let the ledger thread take the
        interpreter lock from the send loop on every reply)."""
        self._segment += 1
        self._size = 0
        path = self.folder / f"{self._name}.{self._segment}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            # Allocated, not sparse: a full disk fails here (OSError), never as a SIGBUS
            # on a write into the map.
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)
            self._map = mmap.mmap(fd, SEGMENT_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
                os.close(fd)
                raise
            self._map = None  # a file system without fallocate or mmap: plain writes
            os.ftruncate(fd, 0)
        return fd, path

    def _close_segment(self) -> None:
        if self._map is not None:
            self._map.close()
            os.ftruncate(self._fd, self._size)  # the allocated tail goes: exact JSON lines
        os.close(self._fd)

    def write(self, c: Claim, reply: Reply, cutoff: dt.datetime, message_id: str,
              article_ids: Iterable[int]) -> None:
        """One line, copied into the mapped segment: in the page cache when this returns."""
        if cutoff is not self._cutoff[0]:  # one or a few per run
            self._cutoff = (cutoff, _LINE.encode(cutoff.isoformat()))
        if reply.text != self._text[0]:
            self._text = (reply.text, _LINE.encode(reply.text))
        key = article_ids if isinstance(article_ids, tuple) else tuple(article_ids)
        ids = self._ids.get(key)  # one tuple per distinct digest of the send
        if ids is None:
            if len(self._ids) >= 1024:
                self._ids.clear()
            ids = self._ids[key] = _LINE.encode(list(key))
        code = "null" if reply.code is None else int(reply.code)
        # The same line as _LINE.encode([...]) would write (``reconcile`` reads it as JSON).
        line = (f'[{c.delivery_id:d},{c.edition_id:d},{c.subscriber_id:d},{c.attempts:d},'
                f'"{reply.outcome.value}",{code},{self._text[1]},{self._cutoff[1]},'
                f'{_json_string(message_id)},{ids}]\n').encode()
        end = self._size + len(line)
        if self._map is not None and end <= SEGMENT_BYTES:
            self._map[self._size:end] = line
        else:  # no map, or longer than the room left: written where it belongs
            os.pwrite(self._fd, line, self._size)
        self._size = end
        self.count += 1
        if end >= SEGMENT_BYTES:
            self._close_segment()
            self._closed.append((self._path, self.count))
            self._fd, self._path = self._open_segment()

    def committed(self, upto: int) -> None:
        """The ledger holds every reply up to number ``upto``: drop the segments it covers."""
        while self._closed and self._closed[0][1] <= upto:
            self._closed.pop(0)[0].unlink(missing_ok=True)

    def close(self, *, remove: bool) -> None:
        """``remove``: every reply is in the ledger (a clean end); else kept for reconcile."""
        self._close_segment()
        if remove:
            for path in [p for p, _ in self._closed] + [self._path]:
                path.unlink(missing_ok=True)
            (self.folder / f"{self._name}.lock").unlink(missing_ok=True)
        os.close(self._lock)  # the lock goes with it: a next start may reconcile


def _lines(paths: list[Path]) -> Iterator[list[Any]]:
    for path in paths:
        with path.open("rb") as file:
            for raw in file:
                if not raw.endswith(b"\n"):
                    continue  # cut short by the crash (or the unused, zeroed end of a
                    # segment): that reply was never complete
                with contextlib.suppress(ValueError):
                    yield json.loads(raw)


def _apply(engine: Engine, worker: str, entries: list[list[Any]]) -> int:
    last = {entry[0]: entry for entry in entries}  # a delivery's last reply wins
    applied = 0
    ids = sorted(last)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        with engine.begin() as conn:
            open_rows = select(D.c.id).where(D.c.id.in_(chunk), or_(
                and_(D.c.state == DeliveryState.SENDING, D.c.claimed_by == worker),
                D.c.state == DeliveryState.PENDING))
            if conn.dialect.name == "postgresql":
                open_rows = open_rows.with_for_update()
            still = set(conn.scalars(open_rows))
            recorder = Recorder(engine, group=len(chunk) + 1)  # written below, in this transaction
            for delivery_id in sorted(still):
                (_, edition_id, subscriber_id, attempts, outcome, code, text, cutoff,
                 message_id, article_ids) = last[delivery_id]
                record(recorder, Claim(delivery_id, edition_id, subscriber_id, attempts),
                       Reply(Outcome(outcome), code, text), dt.datetime.fromisoformat(cutoff),
                       message_id, article_ids)
            recorder.take().write(conn)
            applied += len(still)
    return applied


def reconcile(engine: Engine, folder: Path) -> int:
    """Apply the journals of senders that are gone to the ledger, then delete them; how many
    deliveries it settled. Run at the start of every send, before anything is reclaimed."""
    if not folder.is_dir():
        return 0
    settled = 0
    for lock in sorted(folder.glob("*.lock")):
        fd = os.open(lock, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live sender's
            name = lock.name[:-len(".lock")]  # made of [A-Za-z0-9._-]: no glob characters
            segments = sorted(folder.glob(f"{name}.*.jsonl"),
                              key=lambda p: int(p.name.rsplit(".", 2)[-2]))
            worker = os.read(fd, 4096).decode("utf-8", "replace") or name  # as in the ledger
            settled += _apply(engine, worker, list(_lines(segments)))
            for path in segments:
                path.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return settled
