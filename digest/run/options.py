"""What a send plans: the schedule (every reader due now) or a manual edition, and the clock.

``SendOptions`` is what the CLI hands the pipeline; ``groups_for`` turns it into the due groups
(``delivery.schedule``) that the planner and the dry run share, so both agree on who is due.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection

from digest.config.settings import Settings
from digest.delivery.schedule import DueGroup, active_zones, due_groups, manual_group
from digest.store.models import Frequency, utcnow

__all__ = ["SendOptions", "edition_date", "groups_for"]


@dataclass(frozen=True)
class SendOptions:
    """What to plan. ``schedule``: every reader due now by their own hour, day and timezone
    (``delivery.schedule``; the cron run); otherwise a manual edition of ``frequency`` and
    ``date`` for every reader of it. ``at``: run as if the clock read that instant."""

    date: dt.date | None = None  # manual edition; default: today in DIGEST_TIMEZONE
    frequency: Frequency = Frequency.DAILY
    dry_run: bool = False
    retry_deferred: bool = False
    schedule: bool = False
    at: dt.datetime | None = None  # aware; default: now

    @property
    def clock(self) -> dt.datetime:
        return (self.at or utcnow()).astimezone(dt.UTC)


def edition_date(settings: Settings, options: SendOptions) -> dt.date:
    return options.date or options.clock.astimezone(settings.timezone).date()


def groups_for(conn: Connection, settings: Settings, options: SendOptions) -> list[DueGroup]:
    """Who is due, as groups: the schedule's at ``options.clock``, or the manual edition."""
    if not options.schedule:
        return [manual_group(options.frequency, edition_date(settings, options))]
    return due_groups(active_zones(conn), options.clock, settings)


