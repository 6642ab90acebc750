"""Privacy, archive, healthz, the stylesheet, the path prefix, error pages and the security
headers, over HTTP against a real uvicorn server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from digest.config.settings import Settings
from digest.store.models import Article, Edition, Frequency
from digest.web.security import SECURITY_HEADERS
from tests.web_support import LiveServer, run_server


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with run_server(settings) as live:
        yield live


def _article(n: int, when: dt.datetime) -> Article:
    return Article(url=f"https://stiri.example.ro/a/{n}", title=f"Știrea numărul {n}",
                   summary_text=f"Rezumatul {n} <b>bold</b>", published_at=when, topics=[])


def test_security_headers_on_every_kind_of_response(server: LiveServer) -> None:
    paths = ["/", "/privacy", "/archive", "/archive/12345", "/healthz", "/static/digest.css",
             "/confirm/bad", "/no/such/page"]
    with httpx.Client() as client:
        answers = [client.get(server.base + p) for p in paths]
        answers.append(client.delete(server.base + "/privacy"))  # 405
    assert sorted({a.status_code for a in answers}) == [200, 400, 404, 405]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
        csp = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
        assert "set-cookie" not in answer.headers
    for answer in answers:
        if answer.headers["content-type"].startswith("text/html"):
            assert "<script" not in answer.text and " style=" not in answer.text


def test_paths_answer_with_and_without_the_base_url_prefix(server: LiveServer) -> None:
    assert server.base.endswith("/digest")
    for path in ("/privacy", "/healthz", "/archive", "/"):
        assert httpx.get(server.origin + path).status_code == 200
        assert httpx.get(server.base + path).status_code == 200
    assert httpx.get(server.origin + "/digest").status_code == 200
    assert httpx.get(server.origin + "/digestx/privacy").status_code == 404
    page = httpx.get(server.base + "/privacy").text
    assert 'href="/digest/static/digest.css"' in page and 'href="/digest/archive"' in page


def test_privacy_notice(server: LiveServer) -> None:
    page = httpx.get(server.base + "/privacy")
    assert page.status_code == 200
    for words in ("Privacy notice", "Știri de Argeș", "No tracking", "How long",
                  "download", "delete", "Str. Exemplului 1", "stiri@example.ro"):
        assert words in page.text, words


def test_privacy_redirects_when_the_operator_keeps_it_elsewhere(settings: Settings) -> None:
    elsewhere = replace(settings, privacy_url_override="https://stiri.example.ro/confidentialitate")
    with run_server(elsewhere) as server:
        answer = httpx.get(server.base + "/privacy")
    assert answer.status_code == 307
    assert answer.headers["location"] == "https://stiri.example.ro/confidentialitate"


def test_operator_can_override_a_template(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "privacy.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block content %}<h1>Politica noastră</h1>{% endblock %}')
    with run_server(replace(settings, templates_dir=tmp_path)) as server:
        page = httpx.get(server.base + "/privacy").text
    assert "Politica noastră" in page and "We don't spam" in page


def test_archive_lists_editions_newest_first_and_shows_one(server: LiveServer) -> None:
    when = dt.datetime(2025, 3, 1, 8, tzinfo=dt.UTC)
    with server.sessions.begin() as session:
        arts = [_article(n, when) for n in range(3)]
        session.add_all(arts)
        session.flush()
        old = Edition(frequency=Frequency.DAILY, date=dt.date(2025, 3, 1),
                      article_ids=[arts[2].id, arts[0].id])
        new = Edition(frequency=Frequency.DAILY, date=dt.date(2025, 3, 2), article_ids=[])
        session.add_all([old, new])
        session.flush()
        old_id, new_id = old.id, new.id
    listing = httpx.get(server.base + "/archive").text
    assert listing.index("March 2, 2025") < listing.index("March 1, 2025")
    assert f'href="/digest/archive/{old_id}"' in listing
    page = httpx.get(f"{server.base}/archive/{old_id}")
    assert page.status_code == 200
    # The edition's own order; the summary escaped; an article not in it left out.
    assert page.text.index("Știrea numărul 2") < page.text.index("Știrea numărul 0")
    assert "Știrea numărul 1" not in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert 'href="https://stiri.example.ro/a/2"' in page.text
    empty = httpx.get(f"{server.base}/archive/{new_id}")
    assert empty.status_code == 200 and "No articles" in empty.text
    assert httpx.get(f"{server.base}/archive/999999").status_code == 404
    assert httpx.get(f"{server.base}/archive/abc").status_code == 404


def test_archive_pages(server: LiveServer) -> None:
    from digest.web.pages import PAGE_SIZE

    start = dt.date(2024, 1, 1)
    with server.sessions.begin() as session:
        session.add_all(Edition(frequency=Frequency.DAILY, date=start + dt.timedelta(days=i),
                                article_ids=[]) for i in range(PAGE_SIZE + 2))
    first = httpx.get(server.base + "/archive").text
    assert "?page=2" in first and first.count("<li>") == PAGE_SIZE
    second = httpx.get(server.base + "/archive?page=2").text
    assert second.count("<li>") == 2 and "January 2, 2024" in second
    assert httpx.get(server.base + "/archive?page=zz").status_code == 200


def test_healthz(server: LiveServer) -> None:
    answer = httpx.get(server.base + "/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "editions": 0}


def test_healthz_reports_a_broken_database(settings: Settings, tmp_path: Path) -> None:
    from digest.store.engine import make_engine, make_sessionmaker

    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path}/missing/dir/x.db"))
    with run_server(settings, sessions=broken) as server:
        answer = httpx.get(server.base + "/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "error"


def test_stylesheet(server: LiveServer) -> None:
    css = httpx.get(server.base + "/static/digest.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".trap" in css.text  # hides the honeypot


def test_create_app_refuses_without_a_secret_key(settings: Settings) -> None:
    from digest.config.errors import ConfigError
    from digest.web import create_app

    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        create_app(replace(settings, secret_key=None))


def test_server_error_page_has_the_headers_and_no_traceback(settings: Settings,
                                                            tmp_path: Path) -> None:
    from digest.store.engine import make_engine, make_sessionmaker

    no_tables = make_sessionmaker(make_engine(f"sqlite:///{tmp_path}/empty.db"))
    with run_server(settings, sessions=no_tables) as server:
        answer = httpx.get(server.base + "/archive")
    assert answer.status_code == 500 and "Something went wrong" in answer.text
    assert "Traceback" not in answer.text and "OperationalError" not in answer.text
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value


def test_rate_limiter_window_slides() -> None:
    from digest.web.security import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(limit=2, window=60, clock=lambda: now[0])
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    assert limiter.hit("a") == 60  # the first hit leaves the window in 60 s
    assert limiter.hit("b") == 0  # per key
    now[0] += 30
    assert limiter.hit("a") == 30
    now[0] += 30.5
    assert limiter.hit("a") == 0  # the first hit has slid out
    assert RateLimiter(limit=0, window=5).hit("x") == 5
