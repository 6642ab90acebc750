"""What one ``digest fetch`` did: a result per feed and the totals, as text lines or JSON.

``digest run`` reads ``FetchReport.failed`` to decide its exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from digest.articles.store import Change

__all__ = ["FeedResult", "FetchReport"]


@dataclass
class FeedResult:
    url: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # items left out (e.g. no usable link); the reasons are on the feed row
    status: int | None = None  # HTTP status of the last response, when there was one
    not_modified: bool = False  # answered 304
    moved_to: str | None = None  # a permanent redirect moved the stored URL here
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def count(self, change: Change) -> None:
        setattr(self, change.value, getattr(self, change.value) + 1)

    def line(self) -> str:
        """One line for the operator: ``ok   URL  3 new, 1 updated, 7 unchanged``."""
        if self.error is not None:
            return f"FAIL {self.url}  {self.error}"
        if self.not_modified:
            text = "not modified (304)"
        else:
            text = f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"
            if self.skipped:
                text += f", {self.skipped} skipped"
        if self.moved_to:
            text += f"; moved permanently to {self.moved_to}"
        return f"ok   {self.url}  {text}"

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "new": self.new, "updated": self.updated,
                "unchanged": self.unchanged, "skipped": self.skipped, "status": self.status,
                "not_modified": self.not_modified, "moved_to": self.moved_to,
                "error": self.error}


@dataclass
class FetchReport:
    results: list[FeedResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """How many feeds failed (0 is falsy: ``if report.failed`` reads naturally)."""
        return sum(1 for r in self.results if not r.ok)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.results)

    @property
    def unchanged(self) -> int:
        return sum(r.unchanged for r in self.results)

    @property
    def not_modified(self) -> int:
        return sum(1 for r in self.results if r.not_modified)

    def summary(self) -> str:
        text = (f"{len(self.results)} feed(s): {self.new} new, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.failed} failed")
        if self.not_modified:
            text += f"; {self.not_modified} not modified"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"feeds": [r.as_dict() for r in self.results], "new": self.new,
                "updated": self.updated, "unchanged": self.unchanged, "failed": self.failed,
                "not_modified": self.not_modified}
