"""The article store, JSON import and the ``articles`` commands, on a real database."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.json_import import import_articles, parse_datetime
from digest.articles.store import (
    ArticleData,
    Change,
    canonical_url,
    list_articles,
    recent_articles,
    upsert_article,
)
from digest.cli import main
from digest.config.settings import Settings
from digest.store.models import Article
from tests.conftest import cli_env

UTC = dt.UTC
BUCHAREST = dt.timezone(dt.timedelta(hours=3))  # EEST, for readable expectations


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Article)) or 0)


@pytest.mark.parametrize(("url", "canonical"), [
    ("https://Stiri.Example.RO/a/1", "https://stiri.example.ro/a/1"),
    ("https://stiri.example.ro:443/a/1#comentarii", "https://stiri.example.ro/a/1"),
    ("http://stiri.example.ro:8080/a", "http://stiri.example.ro:8080/a"),
    ("https://stiri.example.ro", "https://stiri.example.ro/"),
    ("https://stiri.example.ro/a?utm_source=x&id=7&UTM_Medium=y&fbclid=z&p=2",
     "https://stiri.example.ro/a?id=7&p=2"),
    ("https://stiri.example.ro/a?utm_source=x", "https://stiri.example.ro/a"),
    ("https://stiri.example.ro/ș/ă?q=%C8%99", "https://stiri.example.ro/ș/ă?q=%C8%99"),
])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_upsert_matches_by_guid_then_url(sessions: sessionmaker[Session]) -> None:
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    data = ArticleData(url="https://stiri.example.ro/a/1?utm_source=rss", title="Primul",
                       guid="tag:stiri.example.ro,2024:1", topics=["local"],
                       published_at=dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    with sessions.begin() as session:
        change, article = upsert_article(session, data, now=now)
        assert change is Change.NEW and article.url == "https://stiri.example.ro/a/1"
        assert upsert_article(session, data, now=now)[0] is Change.UNCHANGED
        # Same guid, the link moved: the same article, now at the new URL.
        moved = ArticleData(url="https://stiri.example.ro/a/1-nou", title="Primul",
                            guid=data.guid, topics=["local"], published_at=data.published_at)
        change, again = upsert_article(session, moved, now=now)
        assert change is Change.UPDATED and again.id == article.id
        assert again.url == "https://stiri.example.ro/a/1-nou"
        # No guid, same canonical URL: matched by URL.
        by_url = ArticleData(url="HTTPS://stiri.example.ro/a/1-nou#top", title="Titlu nou")
        change, third = upsert_article(session, by_url, now=now)
        assert change is Change.UPDATED and third.id == article.id
        assert third.title == "Titlu nou"
        assert third.published_at == data.published_at  # no date given: the stored one stays
    assert _count(sessions) == 1


def test_future_dates_are_clamped_to_now(sessions: sessionmaker[Session]) -> None:
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    data = ArticleData(url="https://stiri.example.ro/viitor", title="Din viitor",
                       published_at=dt.datetime(2099, 1, 1, tzinfo=UTC))
    with sessions.begin() as session:
        assert upsert_article(session, data, now=now)[1].published_at == now


def _seed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for day, topics in ((1, ["sport"]), (2, ["local"]), (3, ["sport", "local"]),
                            (4, [])):
            upsert_article(session, ArticleData(
                url=f"https://stiri.example.ro/a/{day}", title=f"Ziua {day}", topics=topics,
                published_at=dt.datetime(2024, 5, day, 9, 0, tzinfo=UTC)))


def test_recent_articles_is_half_open_and_newest_first(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    with sessions() as session:
        found = recent_articles(session, dt.datetime(2024, 5, 2, 9, 0, tzinfo=UTC),
                                dt.datetime(2024, 5, 4, 9, 0, tzinfo=UTC))
        assert [a.title for a in found] == ["Ziua 3", "Ziua 2"]
        assert [a.title for a in list_articles(session, topic="Sport")] == ["Ziua 3", "Ziua 1"]
        since = dt.datetime(2024, 5, 2, tzinfo=UTC)
        assert [a.title for a in list_articles(session, since=since, limit=2)] == \
            ["Ziua 4", "Ziua 3"]


def test_parse_datetime_reads_naive_times_in_the_site_timezone() -> None:
    assert parse_datetime("2024-05-01T09:30:00Z") == dt.datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert parse_datetime("2024-05-01T09:30", BUCHAREST) == \
        dt.datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
    assert parse_datetime("2024-05-01", BUCHAREST) == dt.datetime(2024, 4, 30, 21, 0, tzinfo=UTC)


GOOD = {"url": "https://stiri.example.ro/a/10", "title": "Podul de pe DN73 se redeschide",
        "summary": '<p onclick="x()">Circulația se reia <script>alert(1)</script>luni.</p>',
        "content_html": '<p>Detalii <a href="javascript:alert(2)">aici</a>.</p>',
        "published_at": "2024-05-01T10:00:00+03:00", "author": "Radu Ionescu",
        "topics": ["Local", "Transport"], "image_url": "https://cdn.example.ro/pod.jpg"}


def test_import_json_array_keeps_good_records_and_reports_bad_ones(
        sessions: sessionmaker[Session]) -> None:
    records = [
        GOOD,
        {"title": "fără adresă"},
        {"url": "javascript:alert(1)", "title": "rău"},
        {"url": "https://stiri.example.ro/a/11", "title": "  "},
        {"url": "https://stiri.example.ro/a/12", "title": "Dată greșită", "published_at": "ieri"},
        "not an object",
        {"url": "https://stiri.example.ro/a/13", "title": "Fără dată", "topics": "sport, Local"},
        {"url": "https://stiri.example.ro/a/14", "title": "Imagine", "image_url": "data:x"},
        {"url": "https://stiri.example.ro/a/15", "title": "Câmp necunoscut", "colour": "red"},
    ]
    seen: list[str] = []
    report = import_articles(sessions, io.StringIO(json.dumps(records)),
                             on_problem=lambda p: seen.append(str(p)))
    assert (report.new, report.invalid) == (2, 7)
    assert seen == [
        "record [1]: `url` is missing",
        "record [2]: `url` 'javascript:alert(1)' is not an absolute http(s) URL",
        "record [3]: `title` is missing",
        "record [4]: 'ieri' is not an ISO 8601 date/time",
        "record [5]: expected a JSON object, got str",
        "record [7]: `image_url` 'data:x' is not an absolute http(s) URL",
        "record [8]: unknown field(s): colour",
    ]
    with sessions() as session:
        stored = session.scalars(select(Article).where(Article.url == GOOD["url"])).one()
        assert stored.summary_html == "<p>Circulația se reia luni.</p>"
        assert stored.content_html == ('<p>Detalii <a rel="noopener noreferrer nofollow">'
                                       "aici</a>.</p>")
        assert stored.summary_text == "Circulația se reia luni."
        assert stored.published_at == dt.datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
        assert stored.topics == ["local", "transport"] and stored.author == "Radu Ionescu"
        undated = session.scalars(select(Article).where(Article.url.endswith("/13"))).one()
        assert undated.topics == ["local", "sport"]


def test_reimport_updates_in_place(sessions: sessionmaker[Session]) -> None:
    lines = "\n".join(json.dumps(r) for r in (GOOD, {**GOOD, "url": GOOD["url"] + "b"}))
    first = import_articles(sessions, io.StringIO(lines))
    assert (first.new, first.invalid) == (2, 0)
    again = import_articles(sessions, io.StringIO(lines))
    assert (again.new, again.unchanged) == (0, 2)
    changed = lines.replace("Podul de pe DN73", "Podul de pe DN73 (actualizat)", 1)
    third = import_articles(sessions, io.StringIO(changed))
    assert (third.new, third.updated, third.unchanged) == (0, 1, 1)
    assert _count(sessions) == 2


def test_json_lines_report_line_numbers(sessions: sessionmaker[Session]) -> None:
    text = "\n\n" + json.dumps(GOOD) + "\n{broken\n\n" + json.dumps({"title": "x"}) + "\n"
    report = import_articles(sessions, io.StringIO(text))
    assert report.new == 1
    assert [str(p) for p in report.problems] == [
        "line 4: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "line 6: `url` is missing",
    ]


def test_cli_import_list_and_add(sessions: sessionmaker[Session], settings: Settings,
                                 tmp_path: Path) -> None:
    env = cli_env(settings)
    runner = CliRunner()
    path = tmp_path / "articles.json"
    path.write_text(json.dumps([GOOD, {"title": "fără url"}]), encoding="utf-8")
    result = runner.invoke(main, ["articles", "import", str(path)], env=env)
    assert result.exit_code == 1
    assert "record [1]: `url` is missing" in result.stderr
    assert result.stdout.strip() == "new 1, updated 0, unchanged 0, invalid 1"

    jsonl = json.dumps({**GOOD, "url": "https://stiri.example.ro/a/20", "topics": "sport"})
    result = runner.invoke(main, ["articles", "import", "-", "--format", "json"], input=jsonl,
                           env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["new"] == 1

    result = runner.invoke(main, ["articles", "add", "--title", "Ședință „extraordinară”",
                                  "--url", "https://stiri.example.ro/a/30", "--published",
                                  "2024-05-03T09:00", "--topics", "Politică",
                                  "--summary", "<b>Azi</b> la 10", "--image",
                                  "https://cdn.example.ro/s.jpg", "--author", "Ana Pop"],
                           env=env)
    assert result.exit_code == 0 and result.output == "New: https://stiri.example.ro/a/30\n"
    bad = runner.invoke(main, ["articles", "add", "--title", "x", "--url", "nope"], env=env)
    assert bad.exit_code == 2 and "not an absolute http(s) URL" in bad.output

    result = runner.invoke(main, ["articles", "list", "--format", "json"], env=env)
    listed = json.loads(result.stdout)
    # Newest first; /20 and /10 share a publication time, the later-stored one comes first.
    assert [a["url"] for a in listed] == ["https://stiri.example.ro/a/30",
                                          "https://stiri.example.ro/a/20",
                                          "https://stiri.example.ro/a/10"]
    newest = listed[0]
    assert newest["title"] == "Ședință „extraordinară”"
    assert newest["published_at"] == "2024-05-03T06:00:00Z"  # Europe/Bucharest, EEST
    assert newest["summary"] == "Azi la 10" and newest["topics"] == ["politică"]
    assert newest["author"] == "Ana Pop" and newest["image_url"] == "https://cdn.example.ro/s.jpg"

    result = runner.invoke(main, ["articles", "list", "--topic", "sport", "--since",
                                  "2024-05-01", "--format", "json"], env=env)
    assert [a["url"] for a in json.loads(result.stdout)] == ["https://stiri.example.ro/a/20"]
    table = runner.invoke(main, ["articles", "list"], env=env)
    assert table.exit_code == 0 and "Ședință „extraordinară”" in table.stdout
    assert "3 article(s)" in table.stderr


@pytest.mark.parametrize("command", [["feeds"], ["feeds", "add"], ["feeds", "list"],
                                     ["feeds", "remove"], ["fetch"], ["articles"],
                                     ["articles", "add"], ["articles", "import"],
                                     ["articles", "list"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output
