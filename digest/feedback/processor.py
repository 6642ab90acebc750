"""One report in, one transaction, one answer: the single processor behind ``digest bounces
process``, ``digest bounces fetch`` and the provider webhooks.

``process_message(raw)`` parses a mailed report; ``process_report(report)`` applies any
``Report`` (a webhook's). Both commit once, so a crash mid-report leaves nothing half done,
and both are rerunnable: a report seen before is answered ``duplicate`` and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings
from digest.feedback.parse import parse_message
from digest.feedback.policy import Action, Outcome, apply_report
from digest.feedback.report import Kind, Report
from digest.store.models import utcnow

__all__ = ["Processed", "process_message", "process_report"]


@dataclass(frozen=True)
class Processed:
    """What one report was and what it changed."""

    report: Report
    outcomes: tuple[Outcome, ...]

    @property
    def action(self) -> Action:
        """The most telling action of the report (a change beats a record beats nothing)."""
        order = list(Action)
        return min((o.action for o in self.outcomes), key=order.index, default=Action.NONE)

    @property
    def recipient(self) -> str | None:
        if not self.outcomes:
            return None
        first = self.outcomes[0]
        return first.subscriber or first.finding.recipient or None

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "kind": r.kind.shown, "policy": r.kind is Kind.POLICY,
            "recipient": self.recipient, "action": self.action.value,
            "source": r.source.value, "report_key": r.key,
            "findings": [{"recipient": o.finding.recipient, "kind": o.finding.kind.value,
                          "status": o.finding.status, "diagnostic": o.finding.diagnostic,
                          "action": o.action.value, "subscriber": o.subscriber,
                          "edition_id": o.edition_id, "matched_by": o.matched_by}
                         for o in self.outcomes],
            "notes": list(r.notes),
        }

    def summary(self) -> str:
        r = self.report
        if not self.outcomes:
            why = f" ({r.notes[0]})" if r.notes else ""
            return f"{r.kind.value}{why}: nothing changed"
        parts = []
        for o in self.outcomes:
            who = o.subscriber or o.finding.recipient or "(redacted recipient)"
            status = f" {o.finding.status}" if o.finding.status else ""
            parts.append(f"{o.finding.kind.value}{status} for {who}: {o.action.value}")
        return f"{r.source.value} report: " + "; ".join(parts)


def process_report(sessions: sessionmaker[Session], settings: Settings, report: Report,
                   clock: Callable[[], dt.datetime] = utcnow) -> Processed:
    """Apply ``report`` in one transaction."""
    if not report.findings:
        return Processed(report, ())
    with sessions.begin() as session:
        outcomes = apply_report(session, settings, report, clock())
    return Processed(report, tuple(outcomes))


def process_message(sessions: sessionmaker[Session], settings: Settings, raw: bytes,
                    clock: Callable[[], dt.datetime] = utcnow,
                    envelope_to: str | None = None) -> Processed:
    """Parse one mailed report (``NotAMessage`` if it is none) and apply it."""
    return process_report(sessions, settings, parse_message(raw, envelope_to), clock)
