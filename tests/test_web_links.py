"""The links in every email, over HTTP against a real uvicorn server: confirm, one-click
unsubscribe (RFC 8058, both encodings, no cookies), preferences, data download, erase; bad tokens;
GET (as mail scanners do) never changes anything."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from digest.config.settings import Settings
from digest.readers.lifecycle import is_suppressed
from digest.render.tokens import Purpose, make_token
from digest.store.models import ConsentEvent, ConsentKind, Frequency, Subscriber, SubscriberStatus
from tests.conftest import SECRET
from tests.web_support import LiveServer, add_reader, run_server, snapshot


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with run_server(settings) as live:
        yield live


def link(server: LiveServer, purpose: Purpose, subscriber_id: int) -> str:
    """The URL an email carries (``{base_url}/{purpose}/{token}``), on the test server."""
    now = server.clock.now if purpose is Purpose.CONFIRM else None
    token = make_token(SECRET, purpose, subscriber_id, now=now)
    return server.local(f"{server.settings.base_url}/{purpose.value}/{token}")


def subscriber(server: LiveServer, subscriber_id: int) -> Subscriber | None:
    with server.sessions() as session:
        return session.get(Subscriber, subscriber_id)


def kinds(server: LiveServer, subscriber_id: int) -> list[tuple[ConsentKind, str]]:
    with server.sessions() as session:
        return [(e.kind, e.source) for e in session.scalars(
            select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.id))]


def test_confirm_get_shows_a_button_post_activates_idempotently(server: LiveServer) -> None:
    sid = add_reader(server.sessions, status=SubscriberStatus.PENDING)
    url = link(server, Purpose.CONFIRM, sid)
    page = httpx.get(url)
    assert page.status_code == 200 and "<button" in page.text and "ana@example.ro" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    first, second = httpx.post(url), httpx.post(url)
    assert first.status_code == second.status_code == 200
    assert "You are subscribed" in second.text
    sub = subscriber(server, sid)
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE and sub.confirmed_at
    assert kinds(server, sid) == [(ConsentKind.SUBSCRIBE, "cli"), (ConsentKind.CONFIRM, "web")]


def test_old_confirm_link_does_not_bring_back_an_unsubscribed_reader(server: LiveServer) -> None:
    sid = add_reader(server.sessions)
    confirm = link(server, Purpose.CONFIRM, sid)
    httpx.post(link(server, Purpose.UNSUBSCRIBE, sid))
    assert httpx.get(confirm).status_code == 400
    assert httpx.post(confirm).status_code == 400
    sub = subscriber(server, sid)
    assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED


def test_expired_confirm_link_is_refused(server: LiveServer) -> None:
    sid = add_reader(server.sessions, status=SubscriberStatus.PENDING)
    url = link(server, Purpose.CONFIRM, sid)
    server.clock.advance(days=15)
    assert httpx.post(url).status_code == 400
    sub = subscriber(server, sid)
    assert sub is not None and sub.status is SubscriberStatus.PENDING


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(server: LiveServer, encoding: str) -> None:
    sid = add_reader(server.sessions)
    url = link(server, Purpose.UNSUBSCRIBE, sid)
    body = {"List-Unsubscribe": "One-Click"}
    # A fresh client per POST: no cookie jar, no CSRF token, nothing but the URL and the body.
    for _ in range(2):
        with httpx.Client(follow_redirects=False) as client:
            if encoding == "urlencoded":
                answer = client.post(url, data=body)
            else:
                answer = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
            sent_type = answer.request.headers["content-type"]
        assert answer.status_code == 200, "RFC 8058: 200, never a redirect"
        assert "set-cookie" not in answer.headers
        assert "You are unsubscribed" in answer.text
    assert sent_type.startswith("multipart/form-data" if encoding == "multipart"
                                else "application/x-www-form-urlencoded")
    sub = subscriber(server, sid)
    assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED
    assert sub.unsubscribed_at is not None
    # Idempotent: two POSTs, one consent event, recorded as one-click.
    assert kinds(server, sid) == [(ConsentKind.SUBSCRIBE, "cli"),
                                  (ConsentKind.UNSUBSCRIBE, "one-click")]


def test_unsubscribe_with_an_empty_or_odd_body(server: LiveServer) -> None:
    sid = add_reader(server.sessions)
    url = link(server, Purpose.UNSUBSCRIBE, sid)
    answer = httpx.post(url, content=b"\x00garbage", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200
    sub = subscriber(server, sid)
    assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED
    assert kinds(server, sid)[-1] == (ConsentKind.UNSUBSCRIBE, "web")


def test_unsubscribe_page_links_to_preferences(server: LiveServer) -> None:
    sid = add_reader(server.sessions)
    page = httpx.get(link(server, Purpose.UNSUBSCRIBE, sid))
    assert page.status_code == 200 and "<button" in page.text
    prefs_token = make_token(SECRET, Purpose.PREFERENCES, sid)
    assert f'href="/digest/preferences/{prefs_token}"' in page.text


def test_bad_tokens_get_a_400_that_reveals_nothing_and_changes_nothing(
        server: LiveServer) -> None:
    sid = add_reader(server.sessions, status=SubscriberStatus.PENDING)
    good = make_token(SECRET, Purpose.UNSUBSCRIBE, sid)
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    wrong_purpose = make_token(SECRET, Purpose.UNSUBSCRIBE, sid)  # used on /confirm
    other_key = make_token("another-secret-key-0123456789", Purpose.UNSUBSCRIBE, sid)
    unknown = make_token(SECRET, Purpose.UNSUBSCRIBE, 999_999)
    before = snapshot(server.sessions)
    cases = [("unsubscribe", tampered), ("confirm", wrong_purpose),
             ("preferences", wrong_purpose), ("unsubscribe", other_key),
             ("unsubscribe", unknown), ("unsubscribe", "not-a-real-token"), ("confirm", "%00%ff")]
    pages = set()
    for path, token in cases:
        for method in ("GET", "POST"):
            answer = httpx.request(method, f"{server.base}/{path}/{token}",
                                   data={"List-Unsubscribe": "One-Click"} if method == "POST"
                                   else None)
            assert answer.status_code == 400, (path, token, method)
            assert "ana@example.ro" not in answer.text and token not in answer.text
            pages.add(answer.text)
    assert len(pages) == 1, "every bad link gets the very same page"
    assert snapshot(server.sessions) == before


def test_get_on_every_reader_link_repeated_changes_nothing(server: LiveServer) -> None:
    pending = add_reader(server.sessions, "p@example.ro", status=SubscriberStatus.PENDING)
    active = add_reader(server.sessions, "a@example.ro")
    urls = [link(server, Purpose.CONFIRM, pending), link(server, Purpose.UNSUBSCRIBE, active),
            link(server, Purpose.PREFERENCES, active), link(server, Purpose.UNSUBSCRIBE, pending),
            f"{server.base}/archive", f"{server.base}/privacy", f"{server.base}/"]
    before = snapshot(server.sessions)
    with httpx.Client() as scanner:
        for _ in range(3):
            for url in urls:
                assert scanner.get(url).status_code == 200, url
                assert scanner.head(url).status_code == 200, url
    assert snapshot(server.sessions) == before


def test_preferences_save(server: LiveServer) -> None:
    from digest.store.models import Feed

    with server.sessions.begin() as session:
        session.add(Feed(url="https://stiri.example.ro/rss", topics=["sport", "local"]))
    sid = add_reader(server.sessions)
    url = link(server, Purpose.PREFERENCES, sid)
    page = httpx.get(url)
    assert page.status_code == 200 and 'value="sport"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    saved = httpx.post(url, data={"topics": ["sport", "made-up"], "frequency": "weekly",
                                  "plain_text_only": "1"})
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    sub = subscriber(server, sid)
    assert sub is not None
    assert (sub.topics, sub.frequency, sub.plain_text_only) == (["sport"], Frequency.WEEKLY, True)
    assert kinds(server, sid)[-1] == (ConsentKind.PREFERENCES, "web")
    assert httpx.post(url, data={"frequency": "hourly"}).status_code == 400


def test_preferences_set_the_hour_the_digest_arrives(server: LiveServer) -> None:
    sid = add_reader(server.sessions)
    url = link(server, Purpose.PREFERENCES, sid)
    page = httpx.get(url).text
    assert '<select id="send_hour" name="send_hour">' in page
    assert '<option value="" selected>' in page and '<option value="18">18:00</option>' in page
    saved = httpx.post(url, data={"frequency": "daily", "send_hour": "18"})
    assert saved.status_code == 200 and '<option value="18" selected>' in saved.text
    sub = subscriber(server, sid)
    assert sub is not None and sub.send_hour == 18
    assert kinds(server, sid)[-1] == (ConsentKind.PREFERENCES, "web")
    httpx.post(url, data={"frequency": "daily", "send_hour": ""})  # back to the usual time
    sub = subscriber(server, sid)
    assert sub is not None and sub.send_hour is None
    assert httpx.post(url, data={"frequency": "daily", "send_hour": "25"}).status_code == 400


def test_download_my_data_and_delete_me(server: LiveServer) -> None:
    sid = add_reader(server.sessions, name="Ana Pop")
    url = link(server, Purpose.PREFERENCES, sid)
    data = httpx.post(f"{url}/data")
    assert data.status_code == 200
    assert data.headers["content-type"].startswith("application/json")
    assert "attachment" in data.headers["content-disposition"]
    body = json.loads(data.text)
    assert body["subscriber"]["email"] == "ana@example.ro"
    assert body["consent_history"][0]["kind"] == "subscribe"
    refused = httpx.post(f"{url}/delete", data={})
    assert refused.status_code == 400 and subscriber(server, sid) is not None
    deleted = httpx.post(f"{url}/delete", data={"confirm": "yes"})
    assert deleted.status_code == 200 and "deleted" in deleted.text
    assert subscriber(server, sid) is None
    with server.sessions() as session:
        assert is_suppressed(session, "ana@example.ro")
    # The links of an erased reader lead nowhere, and say nothing.
    assert httpx.get(url).status_code == 400
    assert httpx.post(link(server, Purpose.UNSUBSCRIBE, sid)).status_code == 400
