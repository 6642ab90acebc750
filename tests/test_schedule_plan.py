"""Planning by the schedule is set-based and agrees, reader by reader, with the rule.

Readers in 30 timezones (UTC-12 to UTC+14, half-hour and 45-minute offsets, both hemispheres'
DST) with every send hour, daily and weekly: at each instant the planner's one INSERT ... SELECT
must create exactly the deliveries that ``due_date`` gives reader by reader, with a handful of
statements whatever the number of readers.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy import text as sql

from digest.config.settings import Settings, Weekday
from digest.delivery.schedule import due_date, zone_of
from digest.run.commands import SendOptions, plan_editions
from digest.run.report import RunReport
from digest.store.models import Delivery, Edition, Frequency, Subscriber, SubscriberStatus
from tests.conftest import PG_URL

ZONES = [None, "Europe/Bucharest", "Europe/London", "Europe/Lisbon", "Europe/Moscow",
         "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "America/Sao_Paulo", "America/St_Johns", "Pacific/Honolulu", "Etc/GMT+12",
         "Pacific/Kiritimati", "Pacific/Auckland", "Pacific/Chatham", "Australia/Sydney",
         "Australia/Adelaide", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu",
         "Asia/Tehran", "Asia/Dubai", "Africa/Cairo", "Africa/Lagos", "Atlantic/Azores",
         "America/Santiago", "Asia/Yangon", "UTC"]
# Around a Monday, and both of Bucharest's DST changes (Southern DST changes nearby too).
INSTANTS = ["2026-12-06T22:00", "2026-12-07T05:00", "2026-12-07T11:00", "2026-12-08T03:00",
            "2026-03-29T01:00", "2026-04-05T14:00", "2026-10-25T00:00", "2026-10-25T01:00"]


def _seed(engine: Engine, n: int) -> None:
    rng = random.Random(11)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(Subscriber), [
            {"email": f"r{i}@example.org", "status": SubscriberStatus.ACTIVE,
             "topics": [], "frequency": rng.choice(list(Frequency)),
             "timezone": ZONES[i % len(ZONES)],
             "send_hour": rng.choice([None, *range(24)]), "plain_text_only": False,
             "created_at": now, "updated_at": now, "confirmed_at": now} for i in range(n)])


def _expected(engine: Engine, settings: Settings, at: dt.datetime) -> set[tuple[int, str, str]]:
    """Reader by reader, with the pure rule: (subscriber, frequency, edition date)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Subscriber.id, Subscriber.frequency, Subscriber.timezone,
                                   Subscriber.send_hour, Subscriber.confirmed_at)).all()
    due = set()
    for r in rows:
        local = at.astimezone(zone_of(r.timezone, settings.timezone))
        hour = settings.send_hour if r.send_hour is None else r.send_hour
        day = due_date(r.frequency, local, hour, settings.weekly_day, r.confirmed_at)
        if day is not None:
            due.add((r.id, r.frequency.value, day.isoformat()))
    return due


def _planned(engine: Engine) -> set[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.subscriber_id, Edition.frequency, Edition.date)
                            .join(Edition, Edition.id == Delivery.edition_id)).all()
    return {(r.subscriber_id, r.frequency.value, r.date.isoformat()) for r in rows}


def test_the_planner_plans_exactly_who_the_rule_says_in_few_statements(
        engine: Engine, settings: Settings) -> None:
    settings = Settings(**{**settings.__dict__, "send_hour": 7, "weekly_day": Weekday.MONDAY})
    _seed(engine, 900)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    for text in INSTANTS:
        at = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        with engine.begin() as conn:  # each instant on a clean ledger
            conn.execute(Delivery.__table__.delete())
            conn.execute(Edition.__table__.delete())
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            plan_editions(engine, settings, SendOptions(schedule=True, at=at), RunReport())
        finally:
            event.remove(engine, "before_cursor_execute", count)
        expected = _expected(engine, settings, at)
        assert expected and _planned(engine) == expected, text
        inserts = [s for s in statements if s.startswith("INSERT INTO deliveries")]
        assert len(inserts) == 1, text  # one INSERT ... SELECT for every zone and hour
        editions = {(f, d) for _, f, d in expected}
        # The zones, a lookup per (frequency, date), which groups have work, count/insert/
        # count (on PostgreSQL inside two SET LOCALs, see plan._hash_anti_join); per new
        # edition its insert (savepoint) and archive selection. Nothing per reader: 900
        # readers or 100,000 (bench/plan.py), the same statements.
        assert len(statements) <= 12 + 7 * len(editions), (text, statements)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: set DIGEST_TEST_DATABASE_URL "
                    "(SQLite looks each reader up in the unique index, never a join choice)")
def test_planning_never_rescans_the_rows_it_inserts(engine: Engine, settings: Settings) -> None:
    """A first edition on a table the planner knows nothing about (fresh, not analyzed):
    PostgreSQL would pick a nested loop whose inner scan reads every row inserted so far
    (quadratic: 15 s for 20,000 readers). The planning statement must not use one."""
    _seed(engine, 300)
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO deliveries"):
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    event.listen(engine, "before_cursor_execute", explain)
    report = RunReport()
    try:
        plan_editions(engine, settings, SendOptions(), report)
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    assert len(plans) == 1 and "Anti Join" in plans[0], plans
    assert "Nested Loop" not in plans[0], plans[0]
    with engine.connect() as conn:  # the setting was this statement's only
        assert conn.scalar(sql("SHOW enable_nestloop")) == "on"
        planned = conn.scalar(select(func.count()).select_from(Delivery))
    assert planned == report.planned > 0
