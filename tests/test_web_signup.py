"""Sign-up over HTTP against a real uvicorn server and a real SMTP server: double opt-in, the same
answer whatever the address's state, the re-send throttle, honeypot, rate limit, SMTP failure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from digest.config.settings import Settings
from digest.readers.lifecycle import Origin, erase, find_subscriber, unsubscribe
from digest.store.models import ConsentEvent, ConsentKind, Subscriber, SubscriberStatus
from digest.web.security import RateLimiter
from tests.conftest import SmtpServer, free_port
from tests.web_support import (
    LiveServer,
    add_reader,
    run_server,
    sent_recorded,
    snapshot,
    wait_for_mail,
)


@pytest.fixture
def server(smtp_settings: Settings) -> Iterator[LiveServer]:
    with run_server(smtp_settings) as live:
        yield live


def sign_up(server: LiveServer, email: str, **fields: str) -> httpx.Response:
    return httpx.post(f"{server.base}/subscribe", data={"email": email, **fields},
                      headers={"User-Agent": "TestBrowser/1.0"})


def events(server: LiveServer, email: str) -> list[ConsentEvent]:
    with server.sessions() as session:
        sub = find_subscriber(session, email)
        assert sub is not None
        return list(session.scalars(select(ConsentEvent).where(
            ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.id)))


def test_form_page(server: LiveServer) -> None:
    page = httpx.get(f"{server.base}/")
    assert page.status_code == 200
    assert 'action="/digest/subscribe"' in page.text
    assert "We don&#39;t spam" in page.text and server.settings.privacy_url in page.text
    assert 'name="website"' in page.text  # the honeypot
    assert "<script" not in page.text


def test_new_address_is_pending_with_evidence_and_gets_one_confirmation(
        server: LiveServer, smtp_server: SmtpServer) -> None:
    answer = sign_up(server, " Ana@Example.RO ", name="Ana  Pop", form="site-box")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [mail] = wait_for_mail(smtp_server, 1)
    assert mail.envelope_to == ["ana@example.ro"]
    assert "/digest/confirm/" in mail.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert sent_recorded(server.sessions, "ana@example.ro") == server.clock.now
    with server.sessions() as session:
        sub = find_subscriber(session, "ana@example.ro")
        assert sub is not None
        assert sub.status is SubscriberStatus.PENDING and sub.name == "Ana Pop"
    [event] = events(server, "ana@example.ro")
    assert event.kind is ConsentKind.SUBSCRIBE and event.source == "web"
    assert event.ip == "127.0.0.1" and event.user_agent == "TestBrowser/1.0"
    assert event.detail is not None and event.detail.startswith("form=site-box; consent=")
    assert "We don't spam" in event.detail


def test_same_answer_whatever_the_state(server: LiveServer, smtp_server: SmtpServer) -> None:
    add_reader(server.sessions, "active@example.ro")
    gone = add_reader(server.sessions, "gone@example.ro")
    with server.sessions.begin() as session:
        sub = session.get(Subscriber, gone)
        assert sub is not None
        erase(session, sub, Origin("cli"))
    answers = {email: sign_up(server, email).text
               for email in ("new@example.ro", "active@example.ro", "gone@example.ro")}
    answers["pending"] = sign_up(server, "new@example.ro").text
    assert len(set(answers.values())) == 1, "the page must not tell the states apart"
    wait_for_mail(smtp_server, 1)
    sent_recorded(server.sessions, "new@example.ro")
    assert [m.envelope_to for m in smtp_server.received] == [["new@example.ro"]]
    with server.sessions() as session:
        assert find_subscriber(session, "gone@example.ro") is None  # erased stays erased
        active = find_subscriber(session, "active@example.ro")
        assert active is not None and active.status is SubscriberStatus.ACTIVE


def test_pending_address_is_re_sent_at_most_once_an_hour(
        server: LiveServer, smtp_server: SmtpServer) -> None:
    sign_up(server, "ana@example.ro")
    wait_for_mail(smtp_server, 1)
    sent_recorded(server.sessions, "ana@example.ro")
    server.clock.advance(minutes=59)
    sign_up(server, "ana@example.ro")
    server.clock.advance(minutes=2)
    sign_up(server, "ana@example.ro")
    wait_for_mail(smtp_server, 2)
    sent_recorded(server.sessions, "ana@example.ro", since=server.clock.now)
    sign_up(server, "ana@example.ro")
    with pytest.raises(AssertionError):
        wait_for_mail(smtp_server, 3, timeout=0.5)
    assert len(events(server, "ana@example.ro")) == 1  # one sign-up, not four


def test_unsubscribed_reader_signing_up_again_needs_to_confirm_again(
        server: LiveServer, smtp_server: SmtpServer) -> None:
    sid = add_reader(server.sessions)
    with server.sessions.begin() as session:
        sub = session.get(Subscriber, sid)
        assert sub is not None
        unsubscribe(session, sub, Origin("cli"))
    sign_up(server, "ana@example.ro", name="Ana Nouă")
    wait_for_mail(smtp_server, 1)
    with server.sessions() as session:
        sub = session.get(Subscriber, sid)
        assert sub is not None and sub.status is SubscriberStatus.PENDING
        assert sub.name == "Ana Nouă"
    kinds = [e.kind for e in events(server, "ana@example.ro")]
    assert kinds == [ConsentKind.SUBSCRIBE, ConsentKind.UNSUBSCRIBE, ConsentKind.RESUBSCRIBE]


def test_honeypot_answers_the_same_and_stores_nothing(
        server: LiveServer, smtp_server: SmtpServer) -> None:
    before = snapshot(server.sessions)
    bot = sign_up(server, "bot@example.ro", website="http://spam.example")
    person = sign_up(server, "person@example.ro")
    assert bot.status_code == 200 and bot.text == person.text
    wait_for_mail(smtp_server, 1)
    assert [m.envelope_to for m in smtp_server.received] == [["person@example.ro"]]
    after = snapshot(server.sessions)
    assert len(after["subscribers"]) == len(before["subscribers"]) + 1


def test_invalid_address_shows_the_form_again(server: LiveServer) -> None:
    before = snapshot(server.sessions)
    answer = sign_up(server, "not-an-address", name="<i>Ion</i>")
    assert answer.status_code == 400
    assert "not a valid email address" in answer.text
    assert 'value="&lt;i&gt;Ion&lt;/i&gt;"' in answer.text  # echoed back, escaped
    assert snapshot(server.sessions) == before


def test_rate_limit_per_ip(smtp_settings: Settings, smtp_server: SmtpServer) -> None:
    with run_server(smtp_settings, limiter=RateLimiter(limit=3, window=600)) as server:
        answers = [sign_up(server, f"r{i}@example.ro") for i in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert "Too many sign-ups" in answers[3].text
        assert int(answers[3].headers["Retry-After"]) > 500
        wait_for_mail(smtp_server, 3)
        with server.sessions() as session:
            assert find_subscriber(session, "r3@example.ro") is None


def test_smtp_failure_keeps_the_sign_up_and_the_next_attempt_sends(
        settings: Settings, smtp_server: SmtpServer) -> None:
    broken = replace(settings, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout=2)
    with run_server(broken) as server:
        answer = sign_up(server, "ana@example.ro")
        assert answer.status_code == 200 and "Check your inbox" in answer.text
    with server.sessions() as session:
        sub = find_subscriber(session, "ana@example.ro")
        assert sub is not None and sub.status is SubscriberStatus.PENDING
        assert sub.confirmation_sent_at is None  # not sent, so not throttled
    working = replace(settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    with run_server(working) as server:
        sign_up(server, "ana@example.ro")  # within the hour, yet sent: the first never went
        [mail] = wait_for_mail(smtp_server, 1)
        assert mail.envelope_to == ["ana@example.ro"]
    assert len(events(server, "ana@example.ro")) == 1


def test_topics_offered_and_kept(server: LiveServer, smtp_server: SmtpServer) -> None:
    from digest.store.models import Feed

    with server.sessions.begin() as session:
        session.add(Feed(url="https://stiri.example.ro/rss", topics=["sport", "local"]))
    assert 'value="sport"' in httpx.get(f"{server.base}/").text
    sign_up_data = {"email": "ana@example.ro", "topics": ["sport", "invented"]}
    httpx.post(f"{server.base}/subscribe", data=sign_up_data)
    with server.sessions() as session:
        sub = find_subscriber(session, "ana@example.ro")
        assert sub is not None and sub.topics == ["sport"]


def test_multipart_sign_up_and_oversized_body(server: LiveServer) -> None:
    answer = httpx.post(f"{server.base}/subscribe", files={"email": (None, "mp@example.ro")})
    assert answer.status_code == 200
    with server.sessions() as session:
        assert find_subscriber(session, "mp@example.ro") is not None
    huge = httpx.post(f"{server.base}/subscribe", data={"email": "x@example.ro",
                                                       "name": "a" * 100_000})
    assert huge.status_code == 413
