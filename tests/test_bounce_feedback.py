"""The return path, the rates and the report page.

- With ``DIGEST_RETURN_PATH`` every digest's MAIL FROM is ``bounces+TOKEN@domain``, a signed,
  lower-case token that fits a local part and names (edition, subscriber); a complaint that
  redacts the reader's address finds them through it, and through our Message-ID without it.
- ``digest status`` shows bounce and complaint rates and warns past 0.1 %; ``digest send
  --format json`` carries the last edition's rates; ``digest report --html`` draws them, and
  Chromium shows the page.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from email.utils import parseaddr
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.feedback_settings import FeedbackSettings
from digest.config.settings import Settings
from digest.readers.lifecycle import find_subscriber
from digest.render.tokens import read_bounce_token
from digest.store.models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryState,
    Edition,
    Frequency,
    SubscriberStatus,
    utcnow,
)
from tests.conftest import SECRET, Received, SmtpServer, cli_env
from tests.sending_data import add_articles, add_readers

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
READERS = [f"cititor{i}@example.ro" for i in range(4)]


def _arf(original: Received | None, mail_from: str | None) -> bytes:
    """A feedback-loop complaint (RFC 5965) as Yahoo and Hotmail send them: the reader's
    address redacted, our message's headers quoted when given."""
    quoted = b""
    if original is not None:
        head = original.data.split(b"\r\n\r\n", 1)[0].replace(
            original.envelope_to[0].encode(), b"redacted@example.ro")
        quoted = (b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + head + b"\r\n\r\n")
    fields = "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
    if mail_from:
        fields += f"Original-Mail-From: <{mail_from}>\r\n"
    head = (f"From: feedback@fbl.example.net\r\nTo: abuse@example.ro\r\n"
            f"Subject: Complaint about a message from 192.0.2.1\r\n"
            f"Message-ID: <fbl-{abs(hash((mail_from, id(original))))}@fbl.example.net>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            f'report-type=feedback-report; boundary="B"\r\n\r\n'
            f"--B\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
            f"--B\r\nContent-Type: message/feedback-report\r\n\r\n{fields}\r\n")
    return head.encode() + quoted + b"--B--\r\n"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_verp_return_path_names_the_delivery(runner: CliRunner, smtp_settings: Settings,
                                             sessions: sessionmaker[Session],
                                             smtp_server: SmtpServer) -> None:
    env = {**cli_env(smtp_settings), "DIGEST_RETURN_PATH": "bounces@news.example.org"}
    add_readers(sessions, READERS)
    add_articles(sessions)
    sent = runner.invoke(main, ["send", "--format", "json"], env=env)
    assert sent.exit_code == 0, sent.output
    edition_id = json.loads(sent.stdout)["edition"]["id"]
    by_reader = {}
    for message in smtp_server.received:
        local, _, domain = message.envelope_from.rpartition("@")
        assert domain == "news.example.org" and local.startswith("bounces+")
        assert len(local) <= 64 and local == local.lower()
        token = local.removeprefix("bounces+")
        with sessions() as session:
            reader = find_subscriber(session, message.envelope_to[0])
            assert reader is not None
            assert read_bounce_token(SECRET, token.upper()) == (edition_id, reader.id)
        by_reader[message.envelope_to[0]] = message
    assert parseaddr(str(by_reader[READERS[0]].message["From"]))[1] == "stiri@example.ro"

    # A complaint with the address redacted: the VERP token finds the reader ...
    verp = by_reader[READERS[0]].envelope_from
    done = runner.invoke(main, ["bounces", "process", "--format", "json"],
                         input=_arf(None, verp), env=env)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["kind"] == "complaint" and result["action"] == "complained"
    assert result["findings"][0]["matched_by"] == "verp"
    # ... and without a return path, our Message-ID in the quoted headers does.
    done = runner.invoke(main, ["bounces", "process", "--format", "json"],
                         input=_arf(by_reader[READERS[1]], None), env=cli_env(smtp_settings))
    result = json.loads(done.stdout)
    assert result["findings"][0]["matched_by"] == "message-id", result
    with sessions() as session:
        for email, status in ((READERS[0], SubscriberStatus.COMPLAINED),
                              (READERS[1], SubscriberStatus.COMPLAINED),
                              (READERS[2], SubscriberStatus.ACTIVE)):
            reader = find_subscriber(session, email)
            assert reader is not None and reader.status is status

    # 2 of 4 complained: the rates say so, and status warns.
    status = runner.invoke(main, ["status", "--format", "json"], env=env)
    rates = json.loads(status.stdout)["editions"][0]["feedback"]
    assert rates["sent"] == 4 and rates["complaints"] == 2 and rates["complaint_rate"] == 0.5
    table = runner.invoke(main, ["status"], env=env)
    assert "50.00%" in table.stdout and "Warning: edition" in table.stderr
    assert "\x1b[" not in table.stderr  # colour only on a terminal
    again = runner.invoke(main, ["send", "--format", "json"], env=env)
    assert json.loads(again.stdout)["feedback"]["complaint_rate"] == 0.5


def test_without_return_path_mail_from_is_the_from_address(
        runner: CliRunner, smtp_settings: Settings, sessions: sessionmaker[Session],
        smtp_server: SmtpServer) -> None:
    add_readers(sessions, READERS[:1])
    add_articles(sessions)
    assert runner.invoke(main, ["send"], env=cli_env(smtp_settings)).exit_code == 0
    assert [m.envelope_from for m in smtp_server.received] == ["stiri@example.ro"]
    with pytest.raises(Exception, match="too long"):
        from digest.config.settings import load_settings

        load_settings({"DIGEST_RETURN_PATH": "x" * 32 + "@example.org"}, env_file=None)
    assert replace(smtp_settings, feedback=FeedbackSettings()).feedback.return_path is None


def _editions(sessions: sessionmaker[Session]) -> None:
    """Eight editions with sent, deferred and failed deliveries (the chart's data)."""
    add_readers(sessions, [f"r{i}@example.ro" for i in range(20)])
    with sessions.begin() as session:
        ids = [s.id for s in session.query(find_subscriber.__globals__["Subscriber"])]
        for day in range(8):
            edition = Edition(frequency=Frequency.DAILY, date=dt.date(2026, 11, 20 + day))
            session.add(edition)
            session.flush()
            for i, sid in enumerate(ids):
                state = (DeliveryState.FAILED if i == day % 5 else DeliveryState.DEFERRED
                         if i < 2 else DeliveryState.SENT)
                session.add(Delivery(edition_id=edition.id, subscriber_id=sid, state=state,
                                     sent_at=utcnow() if state is DeliveryState.SENT else None))
            for i in range(day % 3):  # 0-2 hard bounces, and one complaint on the 26th
                session.add(BounceEvent(report_key=f"k{day}.{i}", recipient=f"r{i}@example.ro",
                                        kind=BounceKind.HARD, subscriber_id=ids[10 + i],
                                        edition_id=edition.id, source="dsn", action="bounced"))
            if day == 6:
                session.add(BounceEvent(report_key="c", recipient="r19@example.ro",
                                        kind=BounceKind.COMPLAINT, subscriber_id=ids[19],
                                        edition_id=edition.id, source="arf", action="complained"))


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_report_html_in_chromium(runner: CliRunner, settings: Settings,
                                 sessions: sessionmaker[Session], tmp_path: Path) -> None:
    from playwright.sync_api import Route, sync_playwright

    _editions(sessions)
    page_file = tmp_path / "report.html"
    done = runner.invoke(main, ["report", "--html", str(page_file)], env=cli_env(settings))
    assert done.exit_code == 0, done.output
    html = page_file.read_text(encoding="utf-8")
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            outside: list[str] = []

            def only_the_file(route: Route) -> None:  # nothing may load from outside
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(page_file.as_uri())
            assert page.evaluate("document.querySelectorAll('svg').length") == 2
            bars = page.evaluate("document.querySelectorAll('rect.sent').length")
            assert bars == 8
            box = page.evaluate("(() => { const r = document.querySelector('svg')"
                                ".getBoundingClientRect(); return [r.width, r.height]; })()")
            assert box == [720, 240]
            points = page.evaluate("document.querySelector('polyline.bounce_rate')"
                                   ".getAttribute('points').split(' ').length")
            assert points == 8
            alarm = page.evaluate("[...document.querySelectorAll('tr.alarm td')]"
                                  ".map(td => td.textContent)")
            assert alarm[1] == "2026-11-26 daily" and alarm[-1] == "5.56 %"  # 1 of 18 sent
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            assert outside == []
        finally:
            browser.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_bounces_are_personal_data(settings: Settings, sessions: sessionmaker[Session]) -> None:
    from digest.feedback.processor import process_report
    from digest.feedback.providers import postmark_report
    from digest.readers.lifecycle import Origin, erase, personal_data
    from digest.store.models import BounceEvent as Event

    add_readers(sessions, ["ana@example.ro"])
    report = postmark_report({"RecordType": "Bounce", "ID": 7, "Type": "SoftBounce",
                              "Email": "ana@example.ro", "Details": "452 4.2.2 mailbox full"})
    done = process_report(sessions, settings, report)
    assert done.action.value == "counted"
    with sessions.begin() as session:
        reader = find_subscriber(session, "ana@example.ro")
        assert reader is not None
        [bounce] = personal_data(session, reader)["bounces_and_complaints"]
        assert bounce["kind"] == "soft" and bounce["status"] == "4.2.2"
        erase(session, reader, Origin("cli"))
    with sessions() as session:
        assert session.query(Event).count() == 0  # erased with the reader


def test_soft_bounces_count_per_digest_and_policy_blocks_never_suppress(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    from digest.feedback.processor import process_report
    from digest.feedback.providers import postmark_report

    add_readers(sessions, ["ana@example.ro"])

    def soft(n: int, kind: str = "SoftBounce", details: str = "452 4.2.2 full") -> str:
        report = postmark_report({"RecordType": "Bounce", "ID": n, "Type": kind,
                                  "Email": "ana@example.ro", "Details": details})
        return process_report(sessions, settings, report).action.value

    def new_edition(day: int) -> None:
        with sessions.begin() as session:
            reader = find_subscriber(session, "ana@example.ro")
            assert reader is not None
            edition = Edition(frequency=Frequency.DAILY, date=dt.date(2026, 11, day))
            session.add(edition)
            session.flush()
            session.add(Delivery(edition_id=edition.id, subscriber_id=reader.id,
                                 state=DeliveryState.SENT, sent_at=utcnow()))

    def status() -> SubscriberStatus:
        with sessions() as session:
            reader = find_subscriber(session, "ana@example.ro")
            assert reader is not None
            return reader.status

    new_edition(1)
    # one digest's retries and warnings count once, and a spam block not at all
    assert [soft(1), soft(2), soft(3)] == ["counted"] * 3
    assert soft(4, "Blocked", "550 5.7.1 blocked for spam") == "recorded"
    assert status() is SubscriberStatus.ACTIVE
    new_edition(2)
    assert soft(5) == "counted" and status() is SubscriberStatus.ACTIVE
    new_edition(3)
    assert soft(6) == "bounced" and status() is SubscriberStatus.BOUNCED  # 3 digests, 30 days
    assert soft(6) == "duplicate"


def test_a_real_dsn_finds_its_delivery_through_the_envelope_address(
        runner: CliRunner, settings: Settings, sessions: sessionmaker[Session]) -> None:
    from digest.render.tokens import make_bounce_token

    # The reader forwards to the address that bounced: only the VERP token knows who it is.
    add_readers(sessions, ["forwarder@example.ro", "xxxxx@local.ie"])
    with sessions() as session:
        reader = find_subscriber(session, "forwarder@example.ro")
        assert reader is not None
        reader_id = reader.id
    dsn = Path(__file__).parent / "data" / "bounces" / "postfix__flufl.bounce__postfix_01.eml"
    verp = f"bounces+{make_bounce_token(SECRET, 1, reader_id)}@news.example.org"
    env = {**cli_env(settings), "DIGEST_RETURN_PATH": "bounces@news.example.org"}
    done = runner.invoke(main, ["bounces", "process", "--format", "json", "--to", verp.upper(),
                                str(dsn)], env=env)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["kind"] == "hard" and result["findings"][0]["matched_by"] == "verp"
    with sessions() as session:
        statuses = {e: find_subscriber(session, e).status  # type: ignore[union-attr]
                    for e in ("forwarder@example.ro", "xxxxx@local.ie")}
    assert statuses == {"forwarder@example.ro": SubscriberStatus.BOUNCED,
                        "xxxxx@local.ie": SubscriberStatus.ACTIVE}
    forged = runner.invoke(main, ["bounces", "process", "--format", "json", "--to",
                                  verp.replace(verp[10:14], "aaaa"), str(dsn)], env=env)
    assert json.loads(forged.stdout)["findings"][0]["matched_by"] == "recipient"
