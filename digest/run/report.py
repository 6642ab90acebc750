"""What one ``digest send`` / ``digest run`` did: counts, timing, the error that stopped it.

The CLI prints ``summary()`` as the last line (or ``as_dict()`` as one JSON object) and exits
with ``exit_code``: 0 all done; 1 something failed or was deferred, a feed failed, or the
edition still has pending or deferred deliveries after the run (read from the ledger, so a
rerun that had nothing due yet still says so); else the code of the error that stopped the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from digest.config.errors import DigestError
from digest.delivery.status import Unfinished
from digest.store.models import DeliveryState

__all__ = ["RunReport"]


@dataclass
class RunReport:
    frequency: str = "daily"  # or "schedule": every reader due now, whatever their edition
    at: str | None = None  # --at: the instant the run acted as if it were
    dry_run: bool = False
    joined: bool = False  # `digest send --join`: an extra sender, no planning
    edition_id: int | None = None
    edition_date: str | None = None
    planned: int = 0  # delivery rows created by this run
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    released: int = 0  # claimed but not attempted (the run stopped): pending again
    reclaimed: int = 0  # left `sending` by a crashed run, taken back at the start
    reconciled: int = 0  # results a crashed sender journaled, written to the ledger at start
    reconnects: int = 0
    composed: int = 0  # dry run only: messages composed and rendered, not sent
    distinct_digests: int = 0  # dry run only: how many different digests those were
    duration_s: float = 0.0
    failed_feeds: list[tuple[str, str]] = field(default_factory=list)  # `digest run`: url, why
    articles_new: int = 0  # `digest run` only
    left: Unfinished | None = None  # the edition's pending/deferred rows after the run
    error: DigestError | None = None
    # What the operator should know that is no reader's fault, each said once (e.g. a
    # message too large for the server, with what to change).
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings and len(self.warnings) < 20:
            self.warnings.append(text)

    @property
    def feeds_failed(self) -> int:
        return len(self.failed_feeds)

    # Every edition this run served (planned for, or checked for newly due readers): {"id",
    # "frequency", "date"} (a scheduled run may serve several local dates at once;
    # edition_id/edition_date: the one, or the latest).
    editions: list[dict[str, Any]] = field(default_factory=list)

    def set_editions(self, editions: list[tuple[int | None, str, str]]) -> None:
        self.editions = [{"id": i, "frequency": f, "date": d} for i, f, d in editions]
        if editions:
            self.edition_id, _, self.edition_date = max(editions, key=lambda e: (e[2], e[1]))

    @property
    def messages_per_s(self) -> float:
        done = self.composed if self.dry_run else self.sent
        return done / self.duration_s if self.duration_s > 0 else 0.0

    def take_counts(self, counts: Counter[DeliveryState]) -> None:
        self.sent = counts[DeliveryState.SENT]
        self.deferred = counts[DeliveryState.DEFERRED]
        self.failed = counts[DeliveryState.FAILED]
        self.skipped = counts[DeliveryState.SKIPPED]
        self.released = counts[DeliveryState.PENDING]

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return 1 if (self.deferred or self.failed or self.feeds_failed or self.left) else 0

    def as_dict(self) -> dict[str, Any]:
        left = self.left or Unfinished()
        data = {
            "planned": self.planned, "sent": self.sent, "deferred": self.deferred,
            "failed": self.failed, "skipped": self.skipped,
            "duration_s": round(self.duration_s, 3),
            "messages_per_s": round(self.messages_per_s, 1),
            "released": self.released, "reclaimed": self.reclaimed,
            "reconciled": self.reconciled,
            "reconnects": self.reconnects, "dry_run": self.dry_run, "joined": self.joined,
            "edition": {"id": self.edition_id, "frequency": self.frequency,
                        "date": self.edition_date},
            "left_pending": left.pending, "left_deferred": left.deferred,
            "next_retry_at": left.next_retry_at.isoformat() if left.next_retry_at else None,
            "editions": self.editions, "at": self.at,
            "feeds_failed": self.feeds_failed, "articles_new": self.articles_new,
            "failed_feeds": [{"url": url, "error": why} for url, why in self.failed_feeds],
            "warnings": list(self.warnings),
            "error": self.error.message if self.error else None,
            "hint": self.error.hint if self.error else None,
            "exit_code": self.exit_code,
        }
        if self.dry_run:  # a real send composes just in time: it has no such totals
            data.update(composed=self.composed, distinct_digests=self.distinct_digests)
        return data

    def summary(self) -> str:
        head = ("joined sender" if self.joined
                else f"{self.frequency} {self.at or self.edition_date or ''}".strip())
        if self.dry_run:
            return (f"dry run {head}: {self.composed} composed and rendered "
                    f"({self.distinct_digests} distinct), {self.skipped} with nothing new; "
                    f"nothing sent or recorded in {self.duration_s:.1f} s")
        text = (f"{head}: planned {self.planned}, sent {self.sent}, deferred {self.deferred}, "
                f"failed {self.failed}, skipped {self.skipped} in {self.duration_s:.1f} s "
                f"({self.messages_per_s:.1f} msg/s)")
        if self.left is not None:  # the ledger's count: claimed or not, attempted or not
            if self.left.pending:
                text += f"; {self.left.pending} left pending"
            if self.left.deferred:
                text += f"; {self.left.deferred} of this edition still deferred"
                if self.left.next_retry_at is not None:
                    text += f", next retry {self.left.next_retry_at:%Y-%m-%d %H:%M} UTC"
        elif self.released:  # a joiner: only what it gave back
            text += f"; {self.released} left pending"
        if self.feeds_failed:
            text += f"; {self.feeds_failed} feed(s) failed: " + ", ".join(
                url for url, _ in self.failed_feeds)
        return text
