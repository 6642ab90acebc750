"""The schedule's rule, without a database: who is due when, across DST and every UTC offset,
and how readers of many timezones become a few SQL groups."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from digest.config.errors import ConfigError
from digest.config.settings import Settings, Weekday, load_settings
from digest.delivery.schedule import due_date, due_groups
from digest.store.models import Frequency

BUC = ZoneInfo("Europe/Bucharest")
UTC = dt.UTC
DAILY, WEEKLY = Frequency.DAILY, Frequency.WEEKLY
MON = Weekday.MONDAY


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _hourly(start: str, hours: int) -> list[dt.datetime]:
    return [_utc(start) + dt.timedelta(hours=h) for h in range(hours)]


def _sends(zone: str, hour: int, instants: list[dt.datetime], frequency: Frequency = DAILY,
           active_since: dt.datetime | None = None) -> list[tuple[dt.datetime, dt.date]]:
    """Which runs send, as an hourly cron would: the first run due for each edition date
    (but the one already due at the first run: it was sent before the window)."""
    got: dict[dt.date, dt.datetime] = {}
    for at in instants:
        day = due_date(frequency, at.astimezone(ZoneInfo(zone)), hour, MON, active_since)
        if day is not None:
            got.setdefault(day, at)
    return [(at, day) for day, at in got.items() if at != instants[0]]


def test_daily_once_per_local_day_at_the_hour_in_three_zones() -> None:
    runs = _hourly("2026-12-06T00:00", 48)
    assert _sends("Europe/Bucharest", 7, runs) == [
        (_utc("2026-12-06T05:00"), dt.date(2026, 12, 6)),
        (_utc("2026-12-07T05:00"), dt.date(2026, 12, 7))]
    assert _sends("America/New_York", 7, runs) == [
        (_utc("2026-12-06T12:00"), dt.date(2026, 12, 6)),
        (_utc("2026-12-07T12:00"), dt.date(2026, 12, 7))]
    # Tokyo's 07:00 on the 7th is 22:00 UTC on the 6th: filed under Tokyo's own date.
    assert _sends("Asia/Tokyo", 7, runs) == [
        (_utc("2026-12-06T22:00"), dt.date(2026, 12, 7)),
        (_utc("2026-12-07T22:00"), dt.date(2026, 12, 8))]


def test_never_before_the_hour() -> None:
    local = dt.datetime(2026, 12, 7, 6, 59, tzinfo=BUC)
    assert due_date(DAILY, local, 7, MON) is None
    assert due_date(WEEKLY, local, 7, MON) is None
    assert due_date(DAILY, local.replace(hour=7, minute=0), 7, MON) == dt.date(2026, 12, 7)


def test_dst_starts_the_missing_hour_is_served_by_the_next_run() -> None:
    """Bucharest, Sunday 29 March 2026: 03:00 EET jumps to 04:00 EEST."""
    runs = _hourly("2026-03-28T22:00", 8)
    assert _sends("Europe/Bucharest", 3, runs) == [(_utc("2026-03-29T01:00"),
                                                    dt.date(2026, 3, 29))]  # 04:00 EEST
    assert _sends("Europe/Bucharest", 4, runs) == [(_utc("2026-03-29T01:00"),
                                                    dt.date(2026, 3, 29))]
    assert _sends("Europe/Bucharest", 5, runs) == [(_utc("2026-03-29T02:00"),
                                                    dt.date(2026, 3, 29))]


def test_dst_ends_the_hour_that_occurs_twice_sends_once() -> None:
    """Bucharest, Sunday 25 October 2026: 04:00 EEST falls back to 03:00 EET."""
    runs = _hourly("2026-10-24T22:00", 8)
    both = [at for at in runs if at.astimezone(BUC).hour == 3]
    assert both == [_utc("2026-10-25T00:00"), _utc("2026-10-25T01:00")]  # 03:00 twice
    assert _sends("Europe/Bucharest", 3, runs) == [(_utc("2026-10-25T00:00"),
                                                    dt.date(2026, 10, 25))]
    assert _sends("Europe/Bucharest", 4, runs) == [(_utc("2026-10-25T02:00"),
                                                    dt.date(2026, 10, 25))]


@pytest.mark.parametrize(("zone", "first"), [
    ("Etc/GMT+12", "2026-12-06T19:00"),  # UTC-12
    ("Pacific/Kiritimati", "2026-12-05T17:00"),  # UTC+14: its 7th begins on the 6th UTC
    ("Asia/Kathmandu", "2026-12-06T02:00"),  # UTC+05:45: 01:00 UTC is 06:45 there, too early
])
def test_every_utc_offset_gets_one_per_local_day(zone: str, first: str) -> None:
    runs = _hourly("2026-12-05T00:00", 96)
    sends = _sends(zone, 7, runs)
    dates = [day for _, day in sends]
    assert len(dates) == len(set(dates))
    for at, day in sends:
        local = at.astimezone(ZoneInfo(zone))
        assert local.date() == day and local.hour >= 7
    assert _utc(first) in [at for at, _ in sends]


def test_weekly_on_its_day_and_a_missed_week_caught_up_once() -> None:
    monday = _hourly("2026-12-07T00:00", 48)
    assert _sends("Europe/Bucharest", 7, monday, WEEKLY) == [
        (_utc("2026-12-07T05:00"), dt.date(2026, 12, 7))]
    # Nothing ran on Monday: the first run at or after the hour on Tuesday catches up.
    tuesday = _hourly("2026-12-08T00:00", 24)
    long_ago = _utc("2026-11-01T00:00")
    assert _sends("Europe/Bucharest", 7, tuesday, WEEKLY, long_ago) == [
        (_utc("2026-12-08T05:00"), dt.date(2026, 12, 7))]
    # ... but a reader who only became active after Monday waits for next Monday.
    assert _sends("Europe/Bucharest", 7, tuesday, WEEKLY, _utc("2026-12-08T03:00")) == []
    next_monday = due_date(WEEKLY, dt.datetime(2026, 12, 14, 7, tzinfo=BUC), 7, MON,
                           _utc("2026-12-08T03:00"))
    assert next_monday == dt.date(2026, 12, 14)


def test_zones_that_agree_now_share_one_group() -> None:
    settings = Settings(timezone=BUC, weekly_day=MON)
    zones = [None, "Europe/Bucharest", "Europe/Kyiv", "America/New_York", "America/Toronto",
             "Asia/Tokyo", "Not/AZone"]
    groups = due_groups(zones, _utc("2026-12-07T05:00"), settings)
    daily = {tuple(g.zones): (g.date, g.hour) for g in groups if g.frequency is DAILY}
    assert daily == {
        (None, "Europe/Bucharest", "Europe/Kyiv", "Not/AZone"): (dt.date(2026, 12, 7), 7),
        ("America/New_York", "America/Toronto"): (dt.date(2026, 12, 7), 0),
        ("Asia/Tokyo",): (dt.date(2026, 12, 7), 14)}
    weekly = [g for g in groups if g.frequency is WEEKLY]
    assert {g.date for g in weekly} == {dt.date(2026, 12, 7)}
    assert all(g.active_before is None for g in weekly)  # Monday everywhere: not a catch-up


def test_settings_read_the_hour_and_the_day() -> None:
    s = load_settings({"DIGEST_SEND_HOUR": "18", "DIGEST_WEEKLY_DAY": "Friday"}, env_file=None)
    assert (s.send_hour, s.weekly_day) == (18, Weekday.FRIDAY)
    assert load_settings({}, env_file=None).send_hour == 7
    for key, bad in [("DIGEST_SEND_HOUR", "24"), ("DIGEST_WEEKLY_DAY", "someday")]:
        with pytest.raises(ConfigError) as caught:
            load_settings({key: bad}, env_file=None)
        assert key in caught.value.message and caught.value.hint
