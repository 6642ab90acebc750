"""Who is due when: each reader's own hour, day and week, from one hourly cron line.

A reader's clock is their ``timezone`` (IANA; NULL or unknown: ``DIGEST_TIMEZONE``) and their
hour is ``send_hour`` (NULL: ``DIGEST_SEND_HOUR``). At an instant ``at`` a reader is due for:

- **daily**: the edition of their *local date*, once their local wall clock reads their hour
  or later (``local.hour >= send_hour``), until local midnight. Never before the hour: after an
  outage that ends before their hour they get that day's digest at the hour, after one that
  ends later they get it at the next run -- one digest either way, carrying what they missed.
- **weekly**: the edition dated their *local week's weekly day* (``DIGEST_WEEKLY_DAY``), on
  that day at or after their hour. A week whose day was missed (an outage, or the runs at their
  hour failed) is caught up at the first run at or after their hour on a later day of that
  week, once; a reader who became active only after that week's day waits for the next one
  (a sign-up on Wednesday does not get a "Monday" digest on Thursday).

Editions: an edition is (frequency, local date) -- the date on the reader's own calendar, not
the site's. Readers in Tokyo, Bucharest and New York whose local date is 7 December share the
daily edition of 2026-12-07, each planned at their own hour (Tokyo's 07:00 is 22:00 UTC the day
before). The unique (edition, subscriber) delivery row is what makes "never twice for the same
local day / week" a database guarantee: a second run in the same local day (a rerun, the hour
that occurs twice when DST ends, an overlapping cron) finds the row and adds nothing. The last
local date a reader got is derived from those rows; nothing else is stored. Each delivery keeps
its own cutoff (the instant of the run that planned it), so every reader gets the news up to
their own hour.

DST: the rule compares the local *wall-clock hour*, so an hour that does not exist (Bucharest,
last Sunday of March, 03:00 -> 04:00) is served by the first run after it (04:00 local), and an
hour that occurs twice (last Sunday of October, 04:00 -> 03:00) sends at the first of the two;
the second finds the delivery done. Local dates run from UTC-12 to UTC+14, so one run may serve
three local dates at once.

Set-based whatever the number of readers: ``due_groups`` works per distinct timezone in Python
(few), merging zones whose local date and hour agree now, and ``group_condition`` turns each
group into one SQL predicate; the planner ORs them into one ``INSERT ... SELECT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Connection, Table, and_, false, func, or_, select, true

from digest.config.settings import Settings, Weekday
from digest.store.models import Frequency, Subscriber, SubscriberStatus

__all__ = ["ANY_ZONE", "DueGroup", "active_zones", "due_condition", "due_date", "due_groups",
           "group_condition", "manual_group", "zone_of"]

S: Table = Subscriber.__table__  # type: ignore[assignment]
ANY_ZONE: tuple[str | None, ...] = ()  # a manual edition: readers in every timezone


@dataclass(frozen=True)
class DueGroup:
    """Readers of some timezones and one frequency who are due now for one edition date.

    ``zones`` are stored ``timezone`` values (None: NULL), or ``ANY_ZONE``; ``hour`` is their
    local hour now (due when their send hour is not later), None for any hour (a manual
    edition); ``active_before``: a weekly catch-up serves only readers active before it.
    """

    frequency: Frequency
    date: dt.date
    zones: tuple[str | None, ...] = ANY_ZONE
    hour: int | None = None
    active_before: dt.datetime | None = None


def manual_group(frequency: Frequency, date: dt.date) -> DueGroup:
    """``--date``/``--frequency``: every active reader of ``frequency``, whatever the hour."""
    return DueGroup(frequency, date)


def zone_of(stored: str | None, default: ZoneInfo) -> ZoneInfo:
    """A reader's clock: their stored zone, or the site's when unset or unknown."""
    if not stored:
        return default
    try:
        return ZoneInfo(stored)
    except (ZoneInfoNotFoundError, ValueError):
        return default


def due_date(frequency: Frequency, local: dt.datetime, send_hour: int, weekly_day: Weekday,
             active_since: dt.datetime | None = None) -> dt.date | None:
    """The edition date one reader is due for when their (aware) local clock reads ``local``,
    or None when nothing is due yet. The rule in one place; ``due_groups`` applies it per zone.
    """
    if local.hour < send_hour:
        return None
    if frequency is Frequency.DAILY:
        return local.date()
    back = (local.weekday() - weekly_day) % 7
    day = local.date() - dt.timedelta(days=back)
    if back and active_since is not None and active_since >= _day_end(day, local):
        return None
    return day


def _day_end(day: dt.date, local: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(),
                               tzinfo=local.tzinfo).astimezone(dt.UTC)


def active_zones(conn: Connection) -> list[str | None]:
    """The distinct ``timezone`` values of active readers (one query; a few dozen rows)."""
    return list(conn.scalars(select(S.c.timezone).distinct()
                             .where(S.c.status == SubscriberStatus.ACTIVE)))


def due_groups(zones: Iterable[str | None], at: dt.datetime, settings: Settings
               ) -> list[DueGroup]:
    """The groups of readers due at ``at``, for the stored ``timezone`` values ``zones``.

    Zones whose local date and hour agree now form one group (New York and Toronto, say), so
    the SQL stays small however many zone names the readers use.
    """
    merged: dict[tuple[Frequency, dt.date, int, dt.datetime | None], list[str | None]] = {}
    for stored in sorted(set(zones), key=lambda z: z or ""):
        local = at.astimezone(zone_of(stored, settings.timezone))
        for frequency in Frequency:
            back = 0 if frequency is Frequency.DAILY else (local.weekday()
                                                           - settings.weekly_day) % 7
            day = local.date() - dt.timedelta(days=back)
            before = _day_end(day, local) if back else None
            merged.setdefault((frequency, day, local.hour, before), []).append(stored)
    return [DueGroup(f, day, tuple(names), hour, before)
            for (f, day, hour, before), names in merged.items()]


def group_condition(group: DueGroup, default_hour: int) -> ColumnElement[bool]:
    """The SQL predicate on ``subscribers`` of the readers in ``group`` who are due, but for
    being active: ``due_condition`` puts that once around all the groups."""
    parts: list[ColumnElement[bool]] = [S.c.frequency == group.frequency]
    if group.zones != ANY_ZONE:
        named = [z for z in group.zones if z is not None]
        zone = S.c.timezone.in_(named) if named else false()
        parts.append(or_(S.c.timezone.is_(None), zone) if None in group.zones else zone)
    if group.hour is not None:
        parts.append(func.coalesce(S.c.send_hour, default_hour) <= group.hour)
    if group.active_before is not None:
        parts.append(or_(S.c.confirmed_at.is_(None), S.c.confirmed_at < group.active_before))
    return and_(true(), *parts)


def due_condition(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """Active, and in one of the groups. The status test stays outside the OR on purpose: in
    each branch it let SQLite answer the OR with one index scan per group (40 scans of half
    the readers for 40 groups); outside, it is one scan that tests each row once."""
    return and_(S.c.status == SubscriberStatus.ACTIVE, or_(*conditions))
