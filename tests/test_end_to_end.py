"""The whole reader journey across every stage, as people and cron would do it: sign up on the
form, confirm from the email, receive the digest from `digest send`, leave with RFC 8058
one-click from that digest's List-Unsubscribe header, and be left out of the next send while
another reader still gets it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config.settings import Settings
from digest.readers.lifecycle import find_subscriber
from digest.store.models import SubscriberStatus
from tests.conftest import SmtpServer, cli_env
from tests.web_support import LiveServer, add_reader, link_in, run_server, wait_for_mail


@pytest.fixture
def server(smtp_settings: Settings) -> Iterator[LiveServer]:
    with run_server(smtp_settings) as live:
        yield live


def cli(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=cli_env(settings))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def test_sign_up_confirm_receive_one_click_and_be_left_out(
        server: LiveServer, smtp_settings: Settings, smtp_server: SmtpServer) -> None:
    add_reader(server.sessions, "ion@exemplu.ro", name="Ion Pop")
    page = httpx.post(server.base + "/subscribe",
                      data={"email": "Iulia@Exemplu.ro", "name": "Iulia Bălan"})
    assert page.status_code == 200
    confirmation = wait_for_mail(smtp_server, 1)[0]
    assert confirmation.envelope_to == ["iulia@exemplu.ro"]
    assert "List-Unsubscribe" not in confirmation.message  # not a bulk message
    confirm_url = server.local(link_in(confirmation, "/confirm/"))
    assert httpx.post(confirm_url).status_code == 200
    with server.sessions() as session:
        iulia = find_subscriber(session, "iulia@exemplu.ro")
        assert iulia is not None and iulia.status is SubscriberStatus.ACTIVE

    cli(smtp_settings, "articles", "add", "--title", "Podul de la Mioveni se redeschide",
        "--url", "https://stiri.example.ro/a/pod", "--topics", "local")
    today = dt.datetime.now(smtp_settings.timezone).date()
    cli(smtp_settings, "send", "--date", today.isoformat())
    digests = smtp_server.received[1:]
    assert sorted(m.envelope_to[0] for m in digests) == ["ion@exemplu.ro", "iulia@exemplu.ro"]
    hers = next(m for m in digests if m.envelope_to == ["iulia@exemplu.ro"]).message
    assert "Podul de la Mioveni" in str(hers["Subject"])

    target = re.fullmatch(r"<(https://[^>\s]+)>", str(hers["List-Unsubscribe"]))
    assert target is not None
    one_click = httpx.post(server.local(target.group(1)),
                           data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert one_click.status_code == 200

    cli(smtp_settings, "articles", "add", "--title", "Târgul de Crăciun se deschide vineri",
        "--url", "https://stiri.example.ro/a/targ")
    tomorrow = today + dt.timedelta(days=1)
    cli(smtp_settings, "send", "--date", tomorrow.isoformat())
    latest = smtp_server.received[3:]
    assert [m.envelope_to for m in latest] == [["ion@exemplu.ro"]]
    assert "Târgul de Crăciun" in latest[0].message.get_body(("plain",)).get_content()
    # Ion never gets the bridge article twice.
    assert "Podul de la Mioveni" not in latest[0].message.get_body(("plain",)).get_content()
