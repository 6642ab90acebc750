"""An hourly cron simulated with ``digest run --at``: readers in Bucharest, New York and Tokyo,
daily and weekly, at their own hours, through two days, a DST change and a 3-day outage. Real
CLI, real SQLite/PostgreSQL, a real SMTP server; each message parsed and its articles checked
against what the reader was due."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings, Weekday
from digest.readers.lifecycle import add_subscriber
from digest.store.models import Article, Frequency, Subscriber
from tests.conftest import SmtpServer, cli_env

UTC = dt.UTC
DAILY, WEEKLY = Frequency.DAILY, Frequency.WEEKLY
LONG_AGO = dt.datetime(2026, 11, 1, tzinfo=UTC)
_URL = re.compile(r"https://stiri\.example\.ro/s/(\d+)")


@dataclass(frozen=True)
class Reader:
    email: str
    zone: str | None
    frequency: Frequency = DAILY
    hour: int | None = None  # None: DIGEST_SEND_HOUR (7)
    active_since: dt.datetime = LONG_AGO


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def schedule(settings: Settings, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return replace(settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                   send_hour=7, weekly_day=Weekday.MONDAY, max_items=100,
                   max_lookback_days=30)


def _readers(sessions: sessionmaker[Session], readers: list[Reader]) -> None:
    with sessions.begin() as session:
        for r in readers:
            sub = add_subscriber(session, r.email, frequency=r.frequency, timezone=r.zone,
                                 send_hour=r.hour)
            session.flush()
            session.execute(update(Subscriber).where(Subscriber.id == sub.id)
                            .values(confirmed_at=r.active_since))


def _articles(sessions: sessionmaker[Session], start: str, end: str, n: int = 0
              ) -> dict[int, dt.datetime]:
    """One article every 3 hours (at :30) from ``start`` to ``end``: id -> published."""
    published = {}
    at = _utc(start) + dt.timedelta(minutes=30)
    with sessions.begin() as session:
        while at < _utc(end):
            n += 1
            session.add(Article(url=f"https://stiri.example.ro/s/{n}", guid=f"s{n}",
                                title=f"Știrea {n}", summary_html="<p>Pe scurt.</p>",
                                summary_text="Pe scurt.", topics=[], published_at=at))
            published[n] = at
            at += dt.timedelta(hours=3)
    return published


class Cron:
    """Runs ``digest run --at`` and files what each run delivered under its instant."""

    def __init__(self, settings: Settings, server: SmtpServer) -> None:
        self.settings, self.server = settings, server
        self.got: dict[str, list[tuple[dt.datetime, set[int]]]] = {}

    def run(self, at: dt.datetime, *extra: str) -> dict[str, object]:
        seen = len(self.server.received)
        result = CliRunner().invoke(main, ["run", "--at", at.isoformat(), "--format", "json",
                                           *extra], env=cli_env(self.settings))
        assert result.exit_code == 0, result.output
        for message in self.server.received[seen:]:
            parsed = message.message
            body = parsed.get_body(("plain",))
            assert body is not None
            ids = {int(n) for n in _URL.findall(body.get_content())}
            self.got.setdefault(str(parsed["To"]).split("<")[-1].rstrip(">"), []).append(
                (at, ids))
        report: dict[str, object] = json.loads(result.stdout)
        return report

    def hourly(self, start: str, hours: int) -> None:
        for h in range(hours):
            self.run(_utc(start) + dt.timedelta(hours=h))

    def instants(self, email: str) -> list[dt.datetime]:
        return [at for at, _ in self.got.get(email, [])]


def _check_windows(cron: Cron, readers: list[Reader], published: dict[int, dt.datetime],
                   first_window: dict[str, dt.datetime] | None = None) -> None:
    """Every digest holds exactly the articles published since the reader's previous one
    (for their first: one period back, or ``first_window``) up to the run -- none later."""
    for r in readers:
        period = dt.timedelta(days=7 if r.frequency is WEEKLY else 1)
        previous = (first_window or {}).get(r.email)
        for at, ids in cron.got.get(r.email, []):
            start = previous or at - period
            assert ids == {n for n, p in published.items() if start < p <= at}, (r.email, at)
            previous = at


def _check_local(cron: Cron, r: Reader) -> None:
    """At or after the reader's hour, at most one per local day (daily) or week (weekly)."""
    zone = ZoneInfo(r.zone or "Europe/Bucharest")
    local = [at.astimezone(zone) for at in cron.instants(r.email)]
    assert all(t.hour >= (7 if r.hour is None else r.hour) for t in local), r.email
    keys = [t.date() if r.frequency is DAILY else t.isocalendar()[:2] for t in local]
    assert len(keys) == len(set(keys)), r.email


THREE_ZONES = [
    Reader("ana@example.ro", "Europe/Bucharest"),  # 07:00 EET = 05:00 UTC
    Reader("dan@example.ro", None, hour=23),  # DIGEST_TIMEZONE, 23:00 = 21:00 UTC
    Reader("bob@example.com", "America/New_York", hour=18),  # 18:00 EST = 23:00 UTC
    Reader("kenji@example.jp", "Asia/Tokyo"),  # 07:00 JST = 22:00 UTC the day before
    # Weekly readers who signed up on Wednesday 2 December: their first is Monday's.
    Reader("ion@example.ro", "Europe/Bucharest", WEEKLY, active_since=_utc("2026-12-02T09:00")),
    Reader("mary@example.com", "America/New_York", WEEKLY, hour=6,  # Mon 06:00 = 11:00 UTC
           active_since=_utc("2026-12-02T09:00")),
    Reader("yuki@example.jp", "Asia/Tokyo", WEEKLY, hour=0,  # Mon 00:00 JST = Sun 15:00 UTC
           active_since=_utc("2026-12-02T09:00")),
]


def test_two_days_of_hourly_runs_send_each_reader_what_is_due(
        schedule: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    _readers(sessions, THREE_ZONES)
    # Articles until the 9th exist in the store: a run only sees those published by --at.
    published = _articles(sessions, "2026-11-28T00:00", "2026-12-09T00:00")
    cron = Cron(schedule, smtp_server)
    cron.run(_utc("2026-12-05T23:00"))  # the day before: New York's 18:00, Tokyo's 08:00
    before = {e: cron.instants(e)[0] for e in ("bob@example.com", "kenji@example.jp")}
    assert sorted(cron.got) == sorted(before)
    cron.got.clear()
    cron.hourly("2026-12-06T00:00", 48)  # Sunday and Monday 7 December, UTC
    expected = {
        "ana@example.ro": ["2026-12-06T05:00", "2026-12-07T05:00"],
        "dan@example.ro": ["2026-12-06T21:00", "2026-12-07T21:00"],
        "bob@example.com": ["2026-12-06T23:00", "2026-12-07T23:00"],
        "kenji@example.jp": ["2026-12-06T22:00", "2026-12-07T22:00"],
        "ion@example.ro": ["2026-12-07T05:00"],
        "mary@example.com": ["2026-12-07T11:00"],
        "yuki@example.jp": ["2026-12-06T15:00"],
    }
    assert {r.email: cron.instants(r.email) for r in THREE_ZONES} == {
        e: [_utc(t) for t in ts] for e, ts in expected.items()}
    for r in THREE_ZONES:
        _check_local(cron, r)
    _check_windows(cron, THREE_ZONES, published, first_window=before)
    # Tokyo's Monday digest and Bucharest's are the same edition (local date 7 December).
    status = CliRunner().invoke(main, ["status", "--format", "json"], env=cli_env(schedule))
    editions = {(e["frequency"], e["date"]) for e in json.loads(status.stdout)["editions"]}
    assert editions == {("daily", "2026-12-05"), ("daily", "2026-12-06"), ("daily", "2026-12-07"),
                        ("daily", "2026-12-08"), ("weekly", "2026-12-07")}


def test_dst_days_send_once_at_the_first_run_at_or_after_the_hour(
        schedule: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    readers = [Reader(f"ora{h}@example.ro", "Europe/Bucharest", hour=h) for h in (2, 3, 4)]
    _readers(sessions, readers)
    published = _articles(sessions, "2026-03-27T00:00", "2026-03-29T00:00")
    published |= _articles(sessions, "2026-10-22T00:00", "2026-10-26T00:00", len(published))
    cron = Cron(schedule, smtp_server)
    # Each from local midnight: 29 March, when 03:00 EET does not exist (04:00 EEST follows
    # 02:59), and 25 October, when 03:00 happens twice (EEST, then EET).
    cron.hourly("2026-03-28T22:00", 6)
    cron.hourly("2026-10-24T21:00", 6)
    assert {r.email: cron.instants(r.email) for r in readers} == {
        "ora2@example.ro": [_utc("2026-03-29T00:00"), _utc("2026-10-24T23:00")],
        "ora3@example.ro": [_utc("2026-03-29T01:00"), _utc("2026-10-25T00:00")],  # 04:00
        "ora4@example.ro": [_utc("2026-03-29T01:00"), _utc("2026-10-25T02:00")],
    }
    for r in readers:
        _check_local(cron, r)
    # March's digest held one day; October's everything since March (all of it in October).
    _check_windows(cron, readers, published)


def test_a_three_day_outage_is_caught_up_with_one_digest_per_reader(
        schedule: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    readers = [
        Reader("ana@example.ro", "Europe/Bucharest"),
        Reader("bob@example.com", "America/New_York"),
        Reader("kenji@example.jp", "Asia/Tokyo"),
        Reader("ion@example.ro", "Europe/Bucharest", WEEKLY),
        Reader("mary@example.com", "America/New_York", WEEKLY),
    ]
    _readers(sessions, readers)
    published = _articles(sessions, "2026-11-20T00:00", "2026-12-10T00:00")
    cron = Cron(schedule, smtp_server)
    # Before: the weekly readers' Monday 30 November and each daily reader's Friday 4th.
    for at in ["2026-11-30T05:00", "2026-11-30T12:00", "2026-12-03T22:00", "2026-12-04T05:00",
               "2026-12-04T12:00"]:
        cron.run(_utc(at))
    before = {r.email: cron.instants(r.email)[-1] for r in readers if r.email in cron.got}
    assert len(before) == 5
    cron.got.clear()
    # Became active on Tuesday, after the Monday nobody sent: waits for next Monday.
    late = Reader("nou@example.ro", "Europe/Bucharest", WEEKLY,
                  active_since=_utc("2026-12-08T03:00"))
    _readers(sessions, [late])
    readers.append(late)
    # No run from Friday to Tuesday 8 December 10:00 UTC, then hourly again until 21:00.
    cron.hourly("2026-12-08T10:00", 12)
    assert {r.email: cron.instants(r.email) for r in readers} == {
        "ana@example.ro": [_utc("2026-12-08T10:00")],  # 12:00 in Bucharest: at once
        "kenji@example.jp": [_utc("2026-12-08T10:00")],  # 19:00 in Tokyo
        "bob@example.com": [_utc("2026-12-08T12:00")],  # waits for 07:00 in New York
        "ion@example.ro": [_utc("2026-12-08T10:00")],  # Monday's week, caught up once
        "mary@example.com": [_utc("2026-12-08T12:00")],
        "nou@example.ro": [],
    }
    # Each catch-up holds every article published since the reader's last digest.
    _check_windows(cron, readers, published, first_window=before)
    assert all(len(ids) > 8 for ids in (cron.got[e][0][1] for e in before))


def test_dry_run_agrees_with_the_run_and_a_manual_edition_ignores_the_hour(
        schedule: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    _readers(sessions, THREE_ZONES)
    _articles(sessions, "2026-12-05T00:00", "2026-12-08T00:00")
    cron = Cron(schedule, smtp_server)
    at = _utc("2026-12-07T05:00")  # Monday: Bucharest's 07:00, Tokyo's 14:00, NY's 00:00
    dry = cron.run(at, "--dry-run")
    assert (dry["composed"], smtp_server.received) == (4, [])  # ana, ion, kenji, yuki
    assert cron.run(at)["sent"] == dry["composed"]
    assert cron.run(at + dt.timedelta(minutes=30))["planned"] == 0  # nothing twice
    # --frequency/--date: every daily reader, whatever their hour (New York is at 00:00).
    manual = cron.run(at, "--frequency", "daily", "--date", "2026-12-07")
    assert manual["planned"] == 2 and manual["sent"] == 2  # bob and dan; the others had it
    assert sorted(cron.got) == sorted(["ana@example.ro", "ion@example.ro", "kenji@example.jp",
                                       "yuki@example.jp", "bob@example.com", "dan@example.ro"])


def test_at_must_be_an_instant(schedule: Settings, sessions: sessionmaker[Session]) -> None:
    result = CliRunner().invoke(main, ["send", "--at", "next monday"], env=cli_env(schedule))
    assert result.exit_code == 2
    assert "ISO 8601" in result.output and "2026-12-07T05:00:00Z" in result.output
