"""``digest preview``: the message one reader would get, on a real database, writing nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings
from digest.readers.lifecycle import Origin, add_subscriber, get_subscriber, unsubscribe
from digest.render.identity import installation_tag
from digest.render.tokens import Purpose, make_token
from digest.store.models import Article, Edition, Frequency, SubscriberStatus, utcnow
from tests.conftest import cli_env
from tests.mailcheck import NASTY_TITLE, assert_checklist, parse


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["preview", *args], env=cli_env(settings),
                              catch_exceptions=False)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every row of every table: to prove preview writes nothing."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted(map(tuple, conn.execute(table.select()).all()), key=repr)
                for name, table in meta.tables.items()}


@pytest.fixture
def today(settings: Settings) -> dt.date:
    return utcnow().astimezone(settings.timezone).date()


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> None:
    now = utcnow()
    with sessions.begin() as session:
        add_subscriber(session, "stefan@example.ro", name="Ștefan Mureșan", origin=Origin("cli"))
        add_subscriber(session, "sport@example.ro", topics=["sport"], origin=Origin("cli"))
        add_subscriber(session, "gone@example.ro", origin=Origin("cli"))
        for i, (title, topics) in enumerate([(NASTY_TITLE, ["local"]),
                                             ("Echipa locală a câștigat", ["sport"])]):
            session.add(Article(url=f"https://stiri.example.ro/a/{i}", title=title,
                                summary_text="Un rezumat scurt al articolului. " * 5,
                                topics=topics, published_at=now - dt.timedelta(hours=i + 1)))
    with sessions.begin() as session:
        unsubscribe(session, get_subscriber(session, "gone@example.ro"), origin=Origin("cli"))


def test_preview_eml_passes_the_checklist_and_writes_nothing(
        settings: Settings, engine: Engine, store: None) -> None:
    before = snapshot(engine)
    result = run(settings, "--email", "Stefan@Example.ro", "--format", "eml")
    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        subscriber_id = get_subscriber(session, "stefan@example.ro").id
    token = make_token(settings.secret_key or "", Purpose.UNSUBSCRIBE, subscriber_id)
    message = assert_checklist(result.stdout_bytes,
                               unsubscribe_url=f"{settings.base_url}/unsubscribe/{token}",
                               postal_address=settings.postal_address)
    assert message["To"].addresses[0].display_name == "Ștefan Mureșan"
    assert message["Subject"].endswith(NASTY_TITLE)  # newest first
    assert "/archive/0" in message.get_body(("plain",)).get_content()  # not planned yet
    assert snapshot(engine) == before


def test_topics_and_stored_edition_are_used(settings: Settings, sessions: sessionmaker[Session],
                                            store: None, today: dt.date) -> None:
    with sessions.begin() as session:
        session.add(Edition(frequency=Frequency.DAILY, date=today, created_at=utcnow()))
    result = run(settings, "--email", "sport@example.ro", "--format", "eml")
    assert result.exit_code == 0, result.output
    message = parse(result.stdout_bytes)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Echipa locală" in text and "Primarul" not in text
    assert "/archive/1" in text
    with sessions() as session:
        sport_id = get_subscriber(session, "sport@example.ro").id
    tag = installation_tag(settings.secret_key or "")
    assert message["Message-ID"] == f"<digest.1.{sport_id}.{tag}@example.ro>"


def test_sample_reader_html_and_text_to_a_file(settings: Settings, store: None,
                                               tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    result = run(settings, "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "&lt;script&gt;" in html
    assert "stefan.muresan@example.com" in html
    text = run(settings).stdout_bytes.decode()
    assert "Unsubscribe: https://stiri.example.ro/digest/unsubscribe/" in text


def test_unsubscribed_reader_is_previewed_with_a_note(settings: Settings, store: None) -> None:
    result = CliRunner().invoke(
        main, ["preview", "--email", "gone@example.ro"], env=cli_env(settings))
    assert result.exit_code == 0
    assert f"is {SubscriberStatus.UNSUBSCRIBED.value}" in result.stderr


def test_nothing_new_exits_1_with_a_hint(settings: Settings, store: None) -> None:
    result = CliRunner().invoke(
        main, ["preview", "--date", "2020-01-01"], env=cli_env(settings))
    assert result.exit_code == 1
    assert "nothing new for this reader: add articles" in result.stderr
    assert "--date" in result.stderr


def test_unknown_email_and_missing_secret(settings: Settings, store: None) -> None:
    result = CliRunner().invoke(
        main, ["preview", "--email", "nobody@example.ro"], env=cli_env(settings))
    assert result.exit_code == 1 and "No subscriber" in result.stderr
    env = {**cli_env(settings), "DIGEST_SECRET_KEY": ""}
    result = CliRunner().invoke(main, ["preview"], env=env)
    assert result.exit_code == 2 and "DIGEST_SECRET_KEY" in result.stderr
