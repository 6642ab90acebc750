"""The web sign-up follows the same address and text rules as the CLI and the CSV import, and a
form with thousands of fields is refused cleanly (issue 10). Real uvicorn, real SMTP server."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from digest.config.settings import Settings
from digest.store.models import Subscriber, SubscriberStatus
from tests.conftest import SmtpServer
from tests.web_support import LiveServer, run_server, wait_for_mail

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _post(server: LiveServer, fields: list[tuple[str, str]]) -> httpx.Response:
    return httpx.post(f"{server.base}/subscribe", content=urlencode(fields), headers=FORM)


def _stored(server: LiveServer) -> dict[str, tuple[str | None, SubscriberStatus]]:
    with server.sessions() as session:
        return {s.email: (s.name, s.status) for s in session.scalars(select(Subscriber))}


def test_thousands_of_form_fields_answer_413_without_a_traceback(
        smtp_settings: Settings, capfd: pytest.CaptureFixture[str]) -> None:
    with run_server(smtp_settings) as server:
        many = [("email", "ana@exemplu.ro")] + [(f"f{i}", "x") for i in range(1500)]
        assert _post(server, many).status_code == 413
        topics = [("email", "ana@exemplu.ro")] + [("topics", "sport")] * 1500
        assert _post(server, topics).status_code == 413
        multipart = httpx.post(f"{server.base}/subscribe", data={"email": "ana@exemplu.ro"},
                               files=[(f"f{i}", (None, "x")) for i in range(1200)])
        assert multipart.status_code in (400, 413)
        assert _stored(server) == {}
        # An ordinary sign-up still works.
        assert _post(server, [("email", "ana@exemplu.ro")]).status_code == 200
    logged = capfd.readouterr().err
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged


@pytest.mark.parametrize("address, reason", [
    # Readers see their own language's words (the operator's reason is in the CLI and logs).
    ("a" * 70 + "@exemplu.ro", "This is not a valid email address"),
    ("ștefan@exemplu.ro", "non-Latin letters before the @"),
    ("ana@redactie.test", "This is not a valid email address"),
])
def test_sign_up_refuses_what_the_cli_and_import_refuse(smtp_settings: Settings, address: str,
                                                        reason: str) -> None:
    with run_server(smtp_settings) as server:
        answer = _post(server, [("email", address)])
        assert answer.status_code == 400 and reason in answer.text
        assert _stored(server) == {}


def test_staging_sign_up_with_a_reserved_domain_and_control_characters_in_the_name(
        smtp_settings: Settings, smtp_server: SmtpServer) -> None:
    staging = replace(smtp_settings, allow_reserved_domains=True)
    with run_server(staging) as server:
        answer = _post(server, [("email", "ana@redactie.test"), ("name", "Ana\x00 Pop\x1b")])
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        wait_for_mail(smtp_server, 1)
        assert _stored(server) == {"ana@redactie.test": ("Ana Pop", SubscriberStatus.PENDING)}
