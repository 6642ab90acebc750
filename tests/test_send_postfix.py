"""The pipelined data path against a real Postfix (which offers PIPELINING): a whole edition
goes out over several reused connections, plain and over STARTTLS, and Postfix delivers
exactly one message per reader, byte-faithful (dot-stuffing undone, Message-ID intact)."""

from __future__ import annotations

import email
import email.policy
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings, SmtpSecurity
from digest.render.mime import to_data_form
from digest.run.commands import send_digest
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply
from tests.postfix_server import PostfixServer
from tests.sending_data import add_articles, add_readers

READERS = [f"cititor{i:02d}@example.ro" for i in range(24)]


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _secured(settings: Settings, server: PostfixServer, tmp_path: Path, tls: bool) -> Settings:
    s = replace(settings, smtp_host=server.host, smtp_port=server.port, send_concurrency=3,
                smtp_max_per_connection=5, smtp_timeout=10.0)
    if not tls:
        return s
    assert server.ca_pem is not None
    ca = tmp_path / "postfix-ca.pem"
    ca.write_bytes(server.ca_pem)
    return replace(s, smtp_security=SmtpSecurity.STARTTLS, smtp_ca_file=ca)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_postfix_gets_exactly_one_digest_per_reader(
        request: pytest.FixtureRequest, tls: bool, settings: Settings, engine: Engine,
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    server: PostfixServer = request.getfixturevalue("postfix_tls" if tls else "postfix")
    add_articles(sessions)
    add_readers(sessions, READERS)
    report = send_digest(engine, _secured(settings, server, tmp_path, tls))
    assert report.error is None and report.sent == len(READERS)
    messages = [_parse(raw) for raw in server.wait_for_messages(len(READERS))]
    time.sleep(0.3)  # nothing more arrives
    assert len(server.message_files()) == len(READERS)
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in messages) == READERS
    assert len({m["Message-ID"] for m in messages}) == len(READERS)
    body = messages[0].get_body(("plain",))
    assert body is not None and "unsubscribe" in body.get_content().lower()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
async def test_postfix_undoes_the_dot_stuffing(request: pytest.FixtureRequest, tls: bool,
                                               settings: Settings, tmp_path: Path) -> None:
    server: PostfixServer = request.getfixturevalue("postfix_tls" if tls else "postfix")
    raw = (b"From: stiri@example.ro\r\nTo: a@example.ro\r\nSubject: dots\r\n"
           b"Message-ID: <dots@example.ro>\r\n\r\n.one leading dot\r\n..two\r\n.\r\nend\r\n")
    jobs = iter([Job(i, "stiri@example.ro", f"r{i}@example.ro", to_data_form(raw))
                 for i in range(4)])
    replies: list[Reply] = []
    pool = SmtpPool(_secured(settings, server, tmp_path, tls), connect_retries=())
    await pool.run(lambda: next(jobs, None), lambda job, reply: replies.append(reply))
    assert [r.outcome for r in replies] == [Outcome.SENT] * 4
    for message in server.wait_for_messages(4):
        assert message.replace(b"\n", b"\r\n").endswith(
            b"\r\n\r\n.one leading dot\r\n..two\r\n.\r\nend\r\n")
