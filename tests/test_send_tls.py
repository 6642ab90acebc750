"""The pool over STARTTLS and implicit TLS with a trustme certificate, with AUTH; a wrong
password or an untrusted certificate stops the run; AUTH never goes over cleartext."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from digest.config.errors import ConfigError, SendAborted
from digest.config.settings import Settings, SmtpSecurity
from digest.render.mime import to_data_form
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply
from tests.smtp_faults import fault_server

USER, PASSWORD = "stiri", "parolă-secretă"
MESSAGE = b"From: a@example.ro\r\nTo: b@example.ro\r\nSubject: t\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield path


async def _send(settings: Settings, count: int = 3) -> list[Reply]:
    jobs = iter([Job(i, "stiri@example.ro", f"r{i}@example.ro", to_data_form(MESSAGE))
                 for i in range(count)])
    pool = SmtpPool(settings, connect_retries=())
    replies: list[Reply] = []
    await pool.run(lambda: next(jobs, None), lambda job, reply: replies.append(reply))
    return replies


@pytest.mark.parametrize("security", [SmtpSecurity.STARTTLS, SmtpSecurity.TLS])
# aiosmtpd warns about AUTH without STARTTLS; on implicit TLS the connection is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_tls_with_auth_delivers(settings: Settings, server_context: ssl.SSLContext,
                                      ca_file: Path, security: SmtpSecurity,
                                      pipelining: bool) -> None:
    tls_kwargs = ({"starttls": server_context} if security is SmtpSecurity.STARTTLS
                  else {"tls": server_context})
    with fault_server(auth=(USER, PASSWORD), pipelining=pipelining,
                      **tls_kwargs) as (handler, port):  # type: ignore[arg-type]
        s = replace(settings, smtp_port=port, smtp_security=security, smtp_ca_file=ca_file,
                    smtp_username=USER, smtp_password=PASSWORD, send_concurrency=2)
        replies = await _send(s)
    assert [r.outcome for r in replies] == [Outcome.SENT] * 3
    assert sorted(handler.accepted) == ["r0@example.ro", "r1@example.ro", "r2@example.ro"]


async def test_wrong_password_stops_the_run(settings: Settings, server_context: ssl.SSLContext,
                                            ca_file: Path) -> None:
    with fault_server(auth=(USER, PASSWORD), starttls=server_context) as (handler, port):
        s = replace(settings, smtp_port=port, smtp_security=SmtpSecurity.STARTTLS,
                    smtp_ca_file=ca_file, smtp_username=USER, smtp_password="wrong")
        with pytest.raises(ConfigError, match="authentication failed") as info:
            await _send(s)
    assert "DIGEST_SMTP_PASSWORD" in info.value.hint and info.value.exit_code == 2
    assert not handler.accepted


async def test_untrusted_certificate_stops_the_run(settings: Settings,
                                                   server_context: ssl.SSLContext) -> None:
    with fault_server(tls=server_context) as (handler, port):
        s = replace(settings, smtp_port=port, smtp_security=SmtpSecurity.TLS)
        with pytest.raises(SendAborted, match="not trusted") as info:
            await _send(s)
    assert "DIGEST_SMTP_CA_FILE" in info.value.hint
    assert not handler.accepted


async def test_no_auth_over_cleartext_when_starttls_is_missing(settings: Settings) -> None:
    """A server without STARTTLS gets no AUTH (and no mail) unless security=none was chosen."""
    with fault_server() as (handler, port):
        s = replace(settings, smtp_port=port, smtp_security=SmtpSecurity.STARTTLS,
                    smtp_username=USER, smtp_password=PASSWORD)
        with pytest.raises(ConfigError, match="does not offer STARTTLS"):
            await _send(s)
    assert not handler.accepted
