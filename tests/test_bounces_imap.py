"""``digest bounces fetch`` against a real Dovecot (implicit TLS and STARTTLS): every message is
processed and moved to Processed or Unrecognized (created), a second fetch finds nothing, and
a wrong password or an untrusted certificate is a clear error, not a traceback."""

from __future__ import annotations

import email
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings
from digest.readers.lifecycle import add_subscriber, find_subscriber
from digest.store.models import SubscriberStatus
from tests.conftest import cli_env
from tests.dovecot_server import DovecotServer

DATA = Path(__file__).parent / "data" / "bounces"
HARD = "postfix__flufl.bounce__postfix_01.eml"  # xxxxx@local.ie, 5.x user unknown
COMPLAINT = "arf__sisimai__arf-02.eml"
AUTO = "auto-reply__sisimai__rfc3834-01.eml"
NOT_BOUNCE = "not-bounce__sisimai__is-not-bounce-01.eml"


def _env(settings: Settings, dovecot: DovecotServer, ca: Path, starttls: bool = False,
         password: str | None = None) -> dict[str, str]:
    return {**cli_env(settings), "DIGEST_BOUNCE_IMAP_HOST": dovecot.host,
            "DIGEST_BOUNCE_IMAP_PORT": str(dovecot.imap_port if starttls else dovecot.imaps_port),
            "DIGEST_BOUNCE_IMAP_SECURITY": "starttls" if starttls else "tls",
            "DIGEST_BOUNCE_IMAP_USER": dovecot.user,
            "DIGEST_BOUNCE_IMAP_PASSWORD": password or dovecot.password,
            "DIGEST_BOUNCE_IMAP_CA_FILE": str(ca)}


@pytest.fixture
def ca(dovecot: DovecotServer, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(dovecot.ca_pem)
    return path


def test_fetch_processes_and_files_every_message(
        dovecot: DovecotServer, ca: Path, settings: Settings,
        sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with sessions() as session:
        add_subscriber(session, "xxxxx@local.ie")
        add_subscriber(session, "someone@example.org")
        session.commit()
    for name in (HARD, COMPLAINT, AUTO, NOT_BOUNCE):
        dovecot.deliver((DATA / name).read_bytes())
    runner = CliRunner()
    result = runner.invoke(main, ["bounces", "fetch", "--format", "json"],
                           env=_env(settings, dovecot, ca))
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert report["processed"] == 3 and report["unrecognized"] == 1
    assert {m["kind"] for m in report["messages"]} == {"hard", "complaint", "auto-reply",
                                                         "unrecognized"}
    assert "Processed" in dovecot.folders() and "Unrecognized" in dovecot.folders()
    assert dovecot.messages("INBOX") == []
    assert len(dovecot.messages("Processed")) == 3
    [odd] = dovecot.messages("Unrecognized")
    original = email.message_from_bytes((DATA / NOT_BOUNCE).read_bytes())
    assert email.message_from_bytes(odd)["Subject"] == original["Subject"]
    with sessions() as session:
        bounced = find_subscriber(session, "xxxxx@local.ie")
        assert bounced is not None and bounced.status is SubscriberStatus.BOUNCED

    again = runner.invoke(main, ["bounces", "fetch"], env=_env(settings, dovecot, ca,
                                                                starttls=True))
    assert again.exit_code == 0, again.output + again.stderr
    assert "0 message(s)" in again.stdout
    # the same bounce mailed twice (a resent DSN) changes nothing twice
    dovecot.deliver((DATA / HARD).read_bytes())
    third = runner.invoke(main, ["bounces", "fetch", "--format", "json"],
                          env=_env(settings, dovecot, ca))
    assert json.loads(third.stdout)["messages"][0]["action"] == "duplicate"


def test_fetch_errors_are_clear(dovecot: DovecotServer, ca: Path, settings: Settings,
                                sessions: sessionmaker[Session], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    wrong = runner.invoke(main, ["bounces", "fetch"],
                          env=_env(settings, dovecot, ca, password="wrong"))
    assert wrong.exit_code == 1 and "refused the login" in wrong.stderr
    assert "Hint:" in wrong.stderr and "Traceback" not in wrong.output
    other_ca = tmp_path / "other.pem"
    import trustme

    other_ca.write_bytes(trustme.CA().cert_pem.bytes())
    untrusted = runner.invoke(main, ["bounces", "fetch"], env=_env(settings, dovecot, other_ca))
    assert untrusted.exit_code == 1 and "TLS" in untrusted.stderr
    unset = runner.invoke(main, ["bounces", "fetch"], env=cli_env(replace(settings)))
    assert unset.exit_code == 2 and "not configured" in unset.stderr
