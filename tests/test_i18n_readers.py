"""The reader's language end to end: sign-up picks and stores it, every page follows it, the
preferences page changes it, one edition goes out in each reader's language, and the CLI takes
and previews it. Real uvicorn, real SMTP (aiosmtpd), a real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings
from digest.readers.lifecycle import find_subscriber
from digest.render.tokens import Purpose, make_token
from digest.run.commands import send_digest
from tests.conftest import SmtpServer, cli_env
from tests.sending_data import add_articles
from tests.test_i18n import untranslated
from tests.web_support import LiveServer, add_reader, link_in, run_server, wait_for_mail


@pytest.fixture
def server(smtp_settings: Settings) -> Iterator[LiveServer]:
    with run_server(smtp_settings) as live:
        yield live


def _locale(server: LiveServer, email: str) -> str | None:
    with server.sessions() as session:
        sub = find_subscriber(session, email)
        assert sub is not None
        return sub.locale


def _visible(html: str) -> str:
    """The words a reader sees or hears on a page (text, alt, aria-label, placeholder)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"<[^>]*?(?:alt|aria-label|title|placeholder)=\"([^\"]*)\"[^>]*>", r" \1 ",
                  html)
    return re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&amp;", "&")


def test_sign_up_takes_the_browser_language_and_mails_in_it(
        server: LiveServer, smtp_server: SmtpServer) -> None:
    ro = {"Accept-Language": "ro-RO,ro;q=0.9,en;q=0.5"}
    form = httpx.get(f"{server.base}/", headers=ro).text
    assert '<html lang="ro">' in form and "Știri direct în căsuța de e-mail" in form
    assert '<option value="ro" lang="ro" selected>' in form
    assert untranslated(_visible(form)) == []
    thanks = httpx.post(f"{server.base}/subscribe", data={"email": "ana@example.ro"}, headers=ro)
    assert "Verificați-vă căsuța de e-mail" in thanks.text
    assert untranslated(_visible(thanks.text)) == []
    assert thanks.headers["content-language"] == "ro"
    assert _locale(server, "ana@example.ro") == "ro"
    [mail] = wait_for_mail(smtp_server, 1)
    assert str(mail.message["Subject"]) == "Confirmați abonarea la Știri de Argeș"
    # The confirmation page behind the emailed link is in the reader's language too, whatever
    # the browser that opens it says.
    page = httpx.get(server.local(link_in(mail, "/confirm/")), headers={"Accept-Language": "en"})
    assert '<html lang="ro">' in page.text and untranslated(_visible(page.text)) == []
    confirmed = httpx.post(server.local(link_in(mail, "/confirm/")))
    assert "V-ați abonat" in confirmed.text and untranslated(_visible(confirmed.text)) == []


def test_the_form_field_wins_over_the_browser(server: LiveServer, smtp_server: SmtpServer) -> None:
    httpx.post(f"{server.base}/subscribe", data={"email": "ion@example.ro", "locale": "en"},
               headers={"Accept-Language": "ro"})
    assert _locale(server, "ion@example.ro") == "en"
    [mail] = wait_for_mail(smtp_server, 1)
    assert str(mail.message["Subject"]) == "Confirm your subscription to Știri de Argeș"


def test_every_page_follows_the_reader_and_the_preferences_change_it(
        server: LiveServer) -> None:
    sid = add_reader(server.sessions, "maria@example.ro", locale="ro_RO")
    secret = server.settings.secret_key or ""
    prefs = f"{server.base}/preferences/{make_token(secret, Purpose.PREFERENCES, sid)}"
    unsub = f"{server.base}/unsubscribe/{make_token(secret, Purpose.UNSUBSCRIBE, sid)}"
    pages = {"preferences": httpx.get(prefs).text, "unsubscribe": httpx.get(unsub).text}
    for public in ("/privacy", "/archive", "/nowhere", "/"):
        pages[public] = httpx.get(server.base + public, headers={"Accept-Language": "ro"}).text
    english = httpx.get(prefs, headers={"Accept-Language": "en"}).text  # the reader wins
    for name, html in pages.items():
        assert '<html lang="ro">' in html, name
        assert untranslated(_visible(html)) == [], name
    assert english == pages["preferences"]
    assert len(untranslated(_visible(httpx.get(server.base + "/privacy").text))) > 5
    left = httpx.post(unsub, data={"confirm": "yes"}).text
    assert "V-ați dezabonat" in left and untranslated(_visible(left)) == []
    saved = httpx.post(prefs, data={"frequency": "weekly", "locale": "en"})
    assert '<html lang="en">' in saved.text and "Your preferences are saved." in saved.text
    assert _locale(server, "maria@example.ro") == "en"
    after = httpx.post(unsub, data={"confirm": "yes"}).text  # now in English
    assert "You are unsubscribed" in after


def test_one_edition_each_reader_in_their_language(
        smtp_settings: Settings, smtp_server: SmtpServer,
        sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_reader(sessions, "ana@example.ro", locale="ro")
    add_reader(sessions, "john@example.com", locale="en-GB")
    add_reader(sessions, "default@example.ro")  # no locale of their own: DIGEST_LOCALE
    report = send_digest(sessions.kw["bind"], replace(smtp_settings, locale="ro"))
    assert report.sent == 3
    by_reader = {r.envelope_to[0]: r.message for r in smtp_server.received}
    for address, lang in (("ana@example.ro", "ro"), ("john@example.com", "en"),
                          ("default@example.ro", "ro")):
        message = by_reader[address]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert f'<html lang="{lang}">' in html
        words = f"{message['Subject']}\n{_visible(html)}\n{text}"
        if lang == "ro":
            assert untranslated(words) == [] and "Citiți mai mult" in html
        else:
            assert "Read more" in html and "Citiți" not in html and "Dezabonare" not in text


def test_cli_add_import_and_preview_in_a_language(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = cli_env(settings)
    runner = CliRunner()
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    assert runner.invoke(main, ["subscribers", "add", "ana@example.ro", "--locale", "ro-RO"],
                         env=env).exit_code == 0
    people = tmp_path / "people.csv"
    people.write_text("email,locale\nion@example.ro,ro_RO\n", encoding="utf-8")
    assert runner.invoke(main, ["subscribers", "import", str(people)], env=env).exit_code == 0
    assert runner.invoke(main, ["articles", "add", "--title", "Podul se redeschide", "--url",
                                "https://stiri.example.ro/a/1"], env=env).exit_code == 0
    for email in ("ana@example.ro", "ion@example.ro"):
        shown = runner.invoke(main, ["preview", "--email", email], env=env)
        assert shown.exit_code == 0, shown.output
        assert "Citiți mai mult: https://stiri.example.ro/a/1" in shown.output
    english = runner.invoke(main, ["preview", "--email", "ana@example.ro", "--locale", "en"],
                            env=env)
    assert "Read more: https://stiri.example.ro/a/1" in english.output
    html = runner.invoke(main, ["preview", "--locale", "ro", "--format", "html"], env=env)
    assert '<html lang="ro">' in html.output
    bad = runner.invoke(main, ["preview", "--locale", "xx"], env=env)
    assert bad.exit_code == 2 and "en, ro" in bad.output
