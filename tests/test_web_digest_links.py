"""The links of a real digest (``digest preview --format eml``, the same compose and render as
sending) work against ``digest serve``: RFC 8058 one-click on its List-Unsubscribe URL in both
encodings with no cookies, and its preferences, privacy and archive links."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config.settings import Settings
from digest.readers.lifecycle import consent_history, find_subscriber
from digest.store.models import ConsentKind, SubscriberStatus
from tests.conftest import cli_env
from tests.web_support import LiveServer, add_reader, run_server


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with run_server(settings) as live:
        yield live


def digest_for(settings: Settings, address: str) -> EmailMessage:
    runner, env = CliRunner(), cli_env(settings)
    added = runner.invoke(main, ["articles", "add", "--title", "Ședința consiliului",
                                 "--url", "https://stiri.example.ro/a/1"], env=env)
    assert added.exit_code == 0, added.output
    result = runner.invoke(main, ["preview", "--email", address, "--format", "eml"], env=env)
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(result.stdout_bytes, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_on_a_digests_list_unsubscribe_url(server: LiveServer, settings: Settings,
                                                     encoding: str) -> None:
    sid = add_reader(server.sessions, "ana@example.ro")
    message = digest_for(settings, "ana@example.ro")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    target = re.fullmatch(r"<(https://[^>\s]+)>", str(message["List-Unsubscribe"]))
    assert target is not None
    url = server.local(target.group(1))
    for _ in range(2):  # a provider may retry: still 200, still one event
        with httpx.Client(follow_redirects=False) as client:  # no cookies, no CSRF token
            if encoding == "urlencoded":
                answer = client.post(url, data={"List-Unsubscribe": "One-Click"})
            else:
                answer = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        assert answer.status_code == 200
    with server.sessions() as session:
        sub = find_subscriber(session, "ana@example.ro")
        assert sub is not None and sub.id == sid
        assert sub.status is SubscriberStatus.UNSUBSCRIBED  # the planner only takes ACTIVE
        history = consent_history(session, sub)
    assert [(e["kind"], e["source"]) for e in history] == [
        (ConsentKind.SUBSCRIBE.value, "cli"), (ConsentKind.UNSUBSCRIBE.value, "one-click")]


def test_every_link_in_a_digest_answers(server: LiveServer, settings: Settings) -> None:
    add_reader(server.sessions, "ana@example.ro")
    message = digest_for(settings, "ana@example.ro")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    base = settings.base_url
    ours = sorted({u for u in re.findall(r"https?://\S+", body.get_content())
                   if u.startswith(base + "/")})
    paths = {u[len(base):].split("/")[1] for u in ours}
    assert {"unsubscribe", "preferences", "privacy"} <= paths, ours
    for url in ours:
        answer = httpx.get(server.local(url))
        # The preview's edition is not stored (id 0), so only its archive link may be missing.
        expected = 404 if "/archive/0" in url else 200
        assert answer.status_code == expected, url
