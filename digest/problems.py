"""Bad input that was reported and skipped: shared by every importer (subscribers CSV, articles
JSON), so each reports problems the same way and keeps only a bounded sample in memory.

May import: nothing else of digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

__all__ = ["Problem", "ProblemLog"]


@dataclass(frozen=True)
class Problem:
    where: str  # "line 4", "record [3]"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ProblemLog:
    """Counts every bad input; keeps the first ``MAX_KEPT`` for the JSON report."""

    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)

    MAX_KEPT: ClassVar[int] = 1000

    def add_problem(self, problem: Problem) -> None:
        self.invalid += 1
        if len(self.problems) < self.MAX_KEPT:
            self.problems.append(problem)
