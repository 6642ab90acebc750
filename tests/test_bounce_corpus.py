"""150 real bounce messages (tests/data/bounces: flufl.bounce's and sisimai's test corpora)
through the real ``digest bounces process`` against a store where their recipients exist.

Each hard bounce's reader ends ``bounced``, each complaint's ``complained``, auto-replies and
unrecognized mail change nothing, every message exits 0, processing everything twice changes
nothing twice, and the next ``digest send`` (real aiosmtpd) leaves the suppressed readers out.

Where our classification differs from the source project's on purpose it is listed in
``DIFFERENT`` with the reason (mostly: a full mailbox is soft for us, whatever the MTA says).
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.errors import DigestError
from digest.config.settings import Settings
from digest.feedback.parse import parse_message
from digest.readers.lifecycle import add_subscriber
from digest.store.models import BounceEvent, ConsentEvent, Subscriber, SubscriberStatus
from tests.conftest import SmtpServer, cli_env
from tests.sending_data import add_articles

DATA = Path(__file__).parent / "data" / "bounces"
ROWS = list(csv.DictReader((DATA / "SOURCES.tsv").open(encoding="utf-8"), delimiter="\t"))

QUOTA = "a full mailbox / over quota is soft here (RFC 3463 5.2.2), flufl calls it permanent"
DIFFERENT = {
    "postfix__flufl.bounce__postfix_04.eml": QUOTA,
    "qmail__flufl.bounce__qmail_06.eml": QUOTA,
    "yahoo__flufl.bounce__yahoo_04.eml": QUOTA,
    "hotpop__flufl.bounce__hotpop_01.eml": QUOTA,
    "mailru__flufl.bounce__newmailru_01.eml": QUOTA,
    "misc__flufl.bounce__simple_45.eml": QUOTA,
    "yahoo__flufl.bounce__yahoo_01.eml": "4.4.1 (no connection) is a temporary status",
    "office365__sisimai__lhost-office365-01.eml": "no delivery-status part; not recognized",
}


def _kinds(row: dict[str, str]) -> set[str]:
    expected = row["expected"]
    return {"hard", "soft"} if expected.startswith("mixed") else {expected}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return CliRunner()


def _process(runner: CliRunner, settings: Settings, path: Path) -> dict[str, object]:
    result = runner.invoke(main, ["bounces", "process", "--format", "json", "-"],
                           input=path.read_bytes(), env=cli_env(settings))
    assert result.exit_code == 0, (path.name, result.output, result.stderr)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _recipients(row: dict[str, str]) -> list[str]:
    """Who the message is about: the source's expectation, else whom the report names (sisimai's
    tables give no addresses)."""
    if row["expected_recipient"]:
        return row["expected_recipient"].split()
    report = parse_message((DATA / row["filename"]).read_bytes())
    return [f.recipient for f in report.findings if "@" in f.recipient]


def _status(sessions: sessionmaker[Session], email: str) -> SubscriberStatus | None:
    with sessions() as session:
        return session.scalar(select(Subscriber.status).where(Subscriber.email == email.lower()))


def test_every_real_bounce_through_the_cli(runner: CliRunner, smtp_settings: Settings,
                                           sessions: sessionmaker[Session],
                                           smtp_server: SmtpServer) -> None:
    settings = smtp_settings
    about = {row["filename"]: _recipients(row) for row in ROWS}
    stored: set[str] = set()
    with sessions() as session:
        for emails in about.values():
            for email in emails:
                # e.g. "david...@gmail.com" is not an address we could hold
                with contextlib.suppress(DigestError):
                    stored.add(add_subscriber(session, email).email)
        session.commit()
    add_articles(sessions)
    results = {row["filename"]: _process(runner, settings, DATA / row["filename"])
               for row in ROWS}

    for row in ROWS:
        name, kinds = row["filename"], _kinds(row)
        readers = [e.lower() for e in about[name] if e.lower() in stored]
        got = results[name]
        if name in DIFFERENT:
            continue
        if kinds == {"hard"}:
            assert readers, name
            assert got["kind"] == "hard", (name, got)
            # sisimai reuses addresses across files: one may have complained as well
            assert all(_status(sessions, e) in (SubscriberStatus.BOUNCED,
                                                SubscriberStatus.COMPLAINED) for e in readers), name
        elif kinds == {"complaint"}:
            assert got["kind"] == "complaint", (name, got)
            assert got["action"] in ("complained", "already-out", "unknown-recipient"), got
        elif kinds == {"auto-reply"}:
            assert got["kind"] == "auto-reply" and got["action"] == "none", (name, got)
            assert not readers or got["findings"] == [], name
    complained = [str(r["recipient"]) for r in results.values() if r["action"] == "complained"]
    assert len(complained) >= 6
    assert all(_status(sessions, e) is SubscriberStatus.COMPLAINED for e in complained)

    with sessions() as session:
        events = session.scalar(select(func.count()).select_from(BounceEvent))
        consent = session.scalar(select(func.count()).select_from(ConsentEvent))
        statuses = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
    for row in ROWS[:40]:  # the same reports again: nothing changes twice
        again = _process(runner, settings, DATA / row["filename"])
        assert again["action"] in ("duplicate", "none", "unknown-recipient"), again
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(BounceEvent)) == events
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == consent

    result = runner.invoke(main, ["send", "--format", "json"], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    mailed = {r for m in smtp_server.received for r in m.envelope_to}
    out = {e for e, s in statuses.items() if s in (SubscriberStatus.BOUNCED,
                                                   SubscriberStatus.COMPLAINED)}
    assert out and not (mailed & out)
    assert mailed == {e for e, s in statuses.items() if s is SubscriberStatus.ACTIVE}
    report = json.loads(result.stdout)
    assert report["sent"] == len(mailed)


def test_a_file_that_is_not_a_message_exits_2(runner: CliRunner, settings: Settings,
                                              sessions: sessionmaker[Session],
                                              tmp_path: Path) -> None:
    junk = tmp_path / "picture.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    result = runner.invoke(main, ["bounces", "process", str(junk)], env=cli_env(settings))
    assert result.exit_code == 2
    assert "not an email message" in result.stderr and "Hint:" in result.stderr
    empty = runner.invoke(main, ["bounces", "process", "-"], input=b"", env=cli_env(settings))
    assert empty.exit_code == 2
