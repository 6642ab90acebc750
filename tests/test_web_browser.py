"""What a reader does, in headless Chromium (Playwright + Debian's chromium) against a real uvicorn
server and a real SMTP server: sign up, open the confirmation email's link, confirm; open a
digest's unsubscribe link and leave; change preferences, download and delete their data.

Every page is screenshotted at 375 px wide into ``test-artifacts/`` and must not scroll sideways;
the browser console must stay clean (a CSP violation would show there).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.config.settings import Settings
from digest.readers.lifecycle import find_subscriber, is_suppressed
from digest.render.tokens import Purpose, make_token
from digest.store.models import Article, ConsentEvent, ConsentKind, Edition, Frequency, Subscriber
from digest.store.models import SubscriberStatus as Status
from digest.web.security import RateLimiter
from tests.conftest import SECRET, SmtpServer
from tests.web_support import LiveServer, add_reader, link_in, run_server, wait_for_mail

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WIDTH = 375
LONG_EMAIL = "ana-maria.popescu-ionescu@redactia-stiri-de-arges.example.ro"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 740}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.console_errors = errors
    yield tab
    context.close()
    # 4xx pages log "Failed to load resource"; anything else (a CSP violation) is a bug.
    assert [e for e in errors if "Failed to load resource" not in e] == []


@pytest.fixture
def server(smtp_settings: Settings) -> Iterator[LiveServer]:
    with run_server(smtp_settings) as live:
        yield live


def shot(page: Any, name: str) -> None:
    """Screenshot the whole page; the page must fit 375 px without scrolling sideways."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=True)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= WIDTH, f"{name}: {scroll_width}px wide, scrolls sideways"
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != "", "no stylesheet"


def status_of(server: LiveServer, email: str) -> Status | None:
    with server.sessions() as session:
        sub = find_subscriber(session, email)
        return sub.status if sub is not None else None


def test_sign_up_and_confirm_from_the_email(page: Any, server: LiveServer,
                                            smtp_server: SmtpServer) -> None:
    page.goto(server.base + "/")
    page.fill("#email", LONG_EMAIL)
    page.fill("#name", "Ana-Maria Popescu")
    shot(page, "subscribe")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    shot(page, "thanks")
    assert status_of(server, LONG_EMAIL) is Status.PENDING

    [mail] = wait_for_mail(smtp_server, 1)
    confirm = link_in(mail, "/confirm/")
    assert confirm.startswith(server.settings.base_url + "/confirm/")
    page.goto(server.local(confirm))
    shot(page, "confirm")
    assert status_of(server, LONG_EMAIL) is Status.PENDING, "opening the link changes nothing"
    page.click("text=Confirm my subscription")
    page.wait_for_selector("h1:has-text('You are subscribed')")
    shot(page, "confirmed")
    assert status_of(server, LONG_EMAIL) is Status.ACTIVE
    with server.sessions() as session:
        event = session.scalars(select(ConsentEvent).where(
            ConsentEvent.kind == ConsentKind.CONFIRM)).one()
        assert event.source == "web" and "Chrome" in (event.user_agent or "")


def test_invalid_address_and_rate_limit_pages(page: Any, smtp_settings: Settings) -> None:
    with run_server(smtp_settings, limiter=RateLimiter(limit=1, window=600)) as server:
        page.goto(server.base + "/")
        page.fill("#email", "ana@")
        # Past the browser's own type=email check, to see the server's answer.
        page.evaluate("document.querySelector('#email').type = 'text'")
        page.click("button[type=submit]")
        page.wait_for_selector(".error")
        shot(page, "subscribe-error")
        assert page.input_value("#email") == "ana@", "the reader's input is kept to correct"
        assert page.locator("button[type=submit]").is_enabled()
        page.fill("#email", "ana@example.ro")
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 429
        page.wait_for_selector("h1:has-text('Too many sign-ups')")
        shot(page, "error-429")
        assert status_of(server, "ana@example.ro") is None, "a limited sign-up stores nothing"


def test_unsubscribe_from_a_digest_link(page: Any, server: LiveServer) -> None:
    sid = add_reader(server.sessions, LONG_EMAIL)
    # The link exactly as the email renderer builds it from DIGEST_BASE_URL.
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, sid)
    page.goto(server.local(f"{server.settings.base_url}/unsubscribe/{token}"))
    shot(page, "unsubscribe")
    page.reload()
    assert status_of(server, LONG_EMAIL) is Status.ACTIVE, "GET changes nothing"
    page.click("button:has-text('Unsubscribe')")
    page.wait_for_selector("h1:has-text('You are unsubscribed')")
    shot(page, "unsubscribed")
    assert status_of(server, LONG_EMAIL) is Status.UNSUBSCRIBED
    with server.sessions() as session:
        kinds = [e.kind for e in session.scalars(select(ConsentEvent).where(
            ConsentEvent.subscriber_id == sid).order_by(ConsentEvent.id))]
    assert kinds == [ConsentKind.SUBSCRIBE, ConsentKind.UNSUBSCRIBE]


def test_preferences_download_and_delete(page: Any, server: LiveServer) -> None:
    from digest.store.models import Feed

    with server.sessions.begin() as session:
        session.add(Feed(url="https://stiri.example.ro/rss", topics=["sport", "local", "cultură"]))
    sid = add_reader(server.sessions, LONG_EMAIL)
    token = make_token(SECRET, Purpose.PREFERENCES, sid)
    page.goto(server.local(f"{server.settings.base_url}/preferences/{token}"))
    shot(page, "preferences")
    page.check("input[name=topics][value=sport]")
    page.check("input[name=frequency][value=weekly]")
    page.check("input[name=plain_text_only]")
    page.click("button:has-text('Save preferences')")
    page.wait_for_selector("text=Your preferences are saved.")
    with server.sessions() as session:
        sub = session.get(Subscriber, sid)
        assert sub is not None
        assert (sub.topics, sub.frequency, sub.plain_text_only) == (["sport"],
                                                                    Frequency.WEEKLY, True)

    with page.expect_download() as download:
        page.click("button:has-text('Download my data')")
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["subscriber"]["email"] == LONG_EMAIL
    assert [e["kind"] for e in data["consent_history"]] == ["subscribe", "preferences"]

    page.check("input[name=confirm]")
    page.click("button:has-text('Delete me')")
    page.wait_for_selector("h1:has-text('Your data is deleted')")
    shot(page, "deleted")
    with server.sessions() as session:
        assert session.get(Subscriber, sid) is None and is_suppressed(session, LONG_EMAIL)


def test_privacy_archive_and_error_pages(page: Any, server: LiveServer) -> None:
    when = dt.datetime(2025, 3, 2, 6, tzinfo=dt.UTC)
    with server.sessions.begin() as session:
        article = Article(
            url="https://stiri.example.ro/2025/03/02/" + "un-titlu-foarte-lung-" * 8,
            title="Consiliul Județean Argeș a aprobat bugetul pe 2025 după o ședință de patru ore",
            summary_text="Consilierii au votat bugetul cu 24 de voturi pentru. " * 4,
            author="Redacția", published_at=when, topics=["local"])
        session.add(article)
        session.flush()
        edition = Edition(frequency=Frequency.DAILY, date=when.date(), article_ids=[article.id])
        session.add_all([edition, Edition(frequency=Frequency.WEEKLY, date=when.date(),
                                          article_ids=[])])
        session.flush()
        edition_id = edition.id
    for name, path, heading in [
            ("privacy", "/privacy", "Privacy notice"), ("archive", "/archive", "Past editions"),
            ("archive-edition", f"/archive/{edition_id}", "Consiliul Județean"),
            ("error-400", "/unsubscribe/not-a-token", "This link does not work"),
            ("error-404", "/no-such-page", "Page not found")]:
        page.goto(server.base + path)
        page.wait_for_selector(f"text={heading}")
        shot(page, name)


def test_romanian_reader_preferences_and_language_switch(page: Any, server: LiveServer) -> None:
    """A Romanian reader's preferences page at 375 px (web-preferences-ro.png): lang="ro",
    Romanian labels, no sideways scroll; choosing English switches the page and the reader."""
    sid = add_reader(server.sessions, LONG_EMAIL, locale="ro-RO")
    token = make_token(SECRET, Purpose.PREFERENCES, sid)
    page.goto(server.local(f"{server.settings.base_url}/preferences/{token}"))
    assert page.evaluate("document.documentElement.lang") == "ro"
    page.wait_for_selector("h1:has-text('Preferințele dumneavoastră')")
    shot(page, "preferences-ro")
    page.check("input[name=locale][value=en]")
    page.click("button:has-text('Salvați preferințele')")
    page.wait_for_selector("text=Your preferences are saved.")
    assert page.evaluate("document.documentElement.lang") == "en"
    with server.sessions() as session:
        sub = session.get(Subscriber, sid)
        assert sub is not None and sub.locale == "en"
