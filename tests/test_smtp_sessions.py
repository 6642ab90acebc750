"""SMTP sessions against real aiosmtpd servers that misbehave: a wrong password costs exactly
one AUTH attempt per run and stops it as a configuration error; a 503 (bad sequence) is the
session's fault, never the reader's; a message too large fails at once with a hint; the
client greets with a real host name, in bulk and single sends alike."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import ConfigError
from digest.config.settings import Settings, SmtpSecurity, load_settings
from digest.render.mime import to_data_form
from digest.run.commands import SendOptions, send_digest
from digest.store.models import Delivery, DeliveryState, Subscriber, SubscriberStatus
from digest.transport import connection
from digest.transport.connection import ehlo_name, send_one
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply
from tests.sending_data import add_articles, add_readers
from tests.smtp_faults import FaultHandler, fault_server

USER, PASSWORD = "stiri", "parolă-secretă"

MESSAGE = b"From: a@example.ro\r\nTo: b@example.ro\r\nSubject: t\r\n\r\nhello\r\n"
READERS = [f"cititor{i}@example.ro" for i in range(12)]

# aiosmtpd counts only STARTTLS as TLS for AUTH; these servers use STARTTLS anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield path


def _with_auth(settings: Settings, port: int, ca_file: Path, password: str,
               **changes: object) -> Settings:
    return replace(settings, smtp_port=port, smtp_security=SmtpSecurity.STARTTLS,  # type: ignore[arg-type]
                   smtp_ca_file=ca_file, smtp_username=USER, smtp_password=password,
                   **changes)


async def _send(settings: Settings, count: int) -> list[Reply]:
    left = [Job(i, "stiri@example.ro", f"r{i}@example.ro", to_data_form(MESSAGE))
            for i in range(count)]
    pool = SmtpPool(settings, connect_retries=(0.05,))
    replies: list[Reply] = []
    await pool.run(lambda: left.pop(0) if left else None,
                   lambda job, reply: replies.append(reply))
    return replies


def _states(sessions: sessionmaker[Session]) -> dict[str, tuple[DeliveryState, int]]:
    with sessions() as session:
        rows = session.execute(select(Subscriber.email, Delivery.state, Delivery.attempts)
                               .join(Delivery, Delivery.subscriber_id == Subscriber.id))
        return {email: (state, attempts) for email, state, attempts in rows}


async def test_a_wrong_password_is_tried_once_by_one_connection(
        settings: Settings, server_context: ssl.SSLContext, ca_file: Path) -> None:
    with fault_server(auth=(USER, PASSWORD), starttls=server_context) as (handler, port):
        s = _with_auth(settings, port, ca_file, "wrong", send_concurrency=4)
        with pytest.raises(ConfigError, match="authentication failed") as info:
            await _send(s, 12)
    # aiosmtpd offers LOGIN and PLAIN: one attempt, one mechanism, one connection.
    assert handler.auth_attempts == [("PLAIN", False)]
    assert info.value.exit_code == 2
    assert "DIGEST_SMTP_USERNAME" in info.value.hint
    assert "DIGEST_SMTP_PASSWORD" in info.value.hint
    assert not handler.accepted


async def test_a_right_password_logs_every_connection_in(
        settings: Settings, server_context: ssl.SSLContext, ca_file: Path) -> None:
    with fault_server(auth=(USER, PASSWORD), starttls=server_context) as (handler, port):
        s = _with_auth(settings, port, ca_file, PASSWORD, send_concurrency=3,
                       smtp_max_per_connection=2)
        replies = await _send(s, 12)
    assert [r.outcome for r in replies] == [Outcome.SENT] * 12
    # One login per connection (12 messages, 2 per connection), each with the first mechanism.
    assert len(handler.auth_attempts) >= 6
    assert set(handler.auth_attempts) == {("PLAIN", True)}


def test_a_wrong_password_stops_the_run_with_every_delivery_pending(
        settings: Settings, sessions: sessionmaker[Session], server_context: ssl.SSLContext,
        ca_file: Path) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS)
    with fault_server(auth=(USER, PASSWORD), starttls=server_context) as (handler, port):
        s = _with_auth(settings, port, ca_file, "wrong", send_concurrency=4, batch_size=5)
        report = send_digest(sessions.kw["bind"], s)
        assert len(handler.auth_attempts) == 1
        assert isinstance(report.error, ConfigError) and report.exit_code == 2
        assert "DIGEST_SMTP_PASSWORD" in report.error.hint
        assert (report.sent, report.failed, report.deferred) == (0, 0, 0)
        assert {state for state, _ in _states(sessions).values()} == {DeliveryState.PENDING}
        with sessions() as session:
            assert set(session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}
        fixed = send_digest(sessions.kw["bind"], _with_auth(settings, port, ca_file, PASSWORD))
    assert fixed.sent == 12 and fixed.exit_code == 0


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_503_bad_sequence_is_retried_in_a_fresh_session_never_the_readers_fault(
        settings: Settings, sessions: sessionmaker[Session], stage: str) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:6])
    bad = "503 5.5.1 Error: need MAIL command"
    handler = FaultHandler()
    # Readers 1 and 2 get a 503 once; reader 3 twice in a row (both tries of this run).
    faults = {READERS[1]: [bad], READERS[2]: [bad], READERS[3]: [bad, bad]}
    if stage == "RCPT":
        handler.script = faults
    else:
        handler.data_script = faults
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=4)
        report = send_digest(sessions.kw["bind"], s)
        states = _states(sessions)
        assert states[READERS[1]] == (DeliveryState.SENT, 1)
        assert states[READERS[2]] == (DeliveryState.SENT, 1)
        assert states[READERS[3]][0] is DeliveryState.DEFERRED  # soft: a later run retries
        assert report.sent == 5 and report.failed == 0 and report.reconnects >= 3
        with sessions() as session:
            assert set(session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}
        again = send_digest(sessions.kw["bind"], s, SendOptions(retry_deferred=True))
    assert again.sent == 1
    assert sorted(handler.accepted) == READERS[:6]
    assert all(len(copies) == 1 for copies in handler.accepted.values())


def test_503_at_mail_is_retried_in_a_fresh_session(settings: Settings,
                                                   sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:6])
    bad = "503 5.5.1 Error: nested MAIL command"
    # One connection, so the N-th MAIL is known: reader 1's first try, reader 3's two tries.
    handler = FaultHandler(mail_at={2: bad, 5: bad, 6: bad})
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port, send_concurrency=1)
        report = send_digest(sessions.kw["bind"], s)
    states = _states(sessions)
    assert states[READERS[1]] == (DeliveryState.SENT, 1)
    assert states[READERS[3]][0] is DeliveryState.DEFERRED
    assert report.error is None and (report.sent, report.failed) == (5, 0)


@pytest.mark.parametrize("how", ["size_limit", "postfix_reply"])
def test_a_message_too_large_fails_at_once_with_a_hint(
        settings: Settings, sessions: sessionmaker[Session], how: str) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:4])
    handler = FaultHandler()
    if how == "postfix_reply":  # what Postfix says past message_size_limit
        handler.data_script = {READERS[1]: ["552 5.3.4 Message size exceeds fixed limit"]}
    # aiosmtpd's own limit: every digest is larger than 2 kB, so every one is refused.
    limit = 2000 if how == "size_limit" else None
    with fault_server(handler, size_limit=limit) as (_, port):
        report = send_digest(sessions.kw["bind"], replace(settings, smtp_port=port))
    states = _states(sessions)
    refused = READERS[:4] if how == "size_limit" else [READERS[1]]
    for reader in refused:
        assert states[reader] == (DeliveryState.FAILED, 1), reader  # at once, not 8 tries
    assert report.failed == len(refused) and report.exit_code == 1 and report.error is None
    assert len(report.warnings) == 1 and "DIGEST_MAX_ITEMS" in report.warnings[0]
    with sessions() as session:
        assert set(session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}
        reply = session.scalars(select(Delivery.smtp_reply)
                                .where(Delivery.state == DeliveryState.FAILED)).first()
    assert reply is not None and "552" in reply and "DIGEST_MAX_ITEMS" in reply


async def test_bulk_and_single_sends_greet_with_the_configured_name(settings: Settings) -> None:
    with fault_server() as (handler, port):
        s = replace(settings, smtp_port=port, smtp_ehlo_name="mail.stiri.example.ro",
                    send_concurrency=2)
        await _send(s, 4)
        await send_one(s, "stiri@example.ro", "ana@example.ro", MESSAGE)
    assert len(handler.ehlo_names) >= 3
    assert set(handler.ehlo_names) == {"mail.stiri.example.ro"}


async def test_the_default_name_is_the_machines_never_localhost(settings: Settings) -> None:
    with fault_server() as (handler, port):
        s = replace(settings, smtp_port=port)
        await _send(s, 1)
        await send_one(s, "stiri@example.ro", "ana@example.ro", MESSAGE)
    assert set(handler.ehlo_names) == {ehlo_name()}
    if socket.gethostname() not in ("localhost", ""):
        assert ehlo_name() != "localhost"


def test_a_better_name_wins_over_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A common /etc/hosts maps the host name to 127.0.0.1 after ``localhost``: getfqdn()
    then says ``localhost``."""
    monkeypatch.setattr(socket, "getfqdn", lambda *a: "localhost")
    monkeypatch.setattr(socket, "gethostname", lambda: "vm")
    monkeypatch.setattr(socket, "gethostbyname_ex",
                        lambda name: ("localhost", ["vm.stiri.example.ro"], ["127.0.0.1"]))
    connection.ehlo_name.cache_clear()
    try:
        assert ehlo_name() == "vm.stiri.example.ro"
        monkeypatch.setattr(socket, "gethostbyname_ex", lambda name: ("localhost", [], []))
        connection.ehlo_name.cache_clear()
        assert ehlo_name() == "vm"
    finally:
        monkeypatch.undo()
        connection.ehlo_name.cache_clear()


def test_the_ehlo_name_setting_is_checked() -> None:
    base = {"DIGEST_SECRET_KEY": "x" * 32}
    assert load_settings(base, env_file=None).smtp_ehlo_name is None
    named = load_settings({**base, "DIGEST_SMTP_EHLO_NAME": "mail.example.ro"}, env_file=None)
    assert named.smtp_ehlo_name == "mail.example.ro"
    literal = load_settings({**base, "DIGEST_SMTP_EHLO_NAME": "[192.0.2.7]"}, env_file=None)
    assert literal.smtp_ehlo_name == "[192.0.2.7]"
    with pytest.raises(ConfigError, match="DIGEST_SMTP_EHLO_NAME"):
        load_settings({**base, "DIGEST_SMTP_EHLO_NAME": "mail example"}, env_file=None)
