"""Subscriber lifecycle on a real database: normalization, consent events, erase + suppression."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import InvalidInput, Suppressed
from digest.readers import lifecycle as subs
from digest.store.models import ConsentEvent, ConsentKind, Frequency, Subscriber, SubscriberStatus

WEB = subs.Origin("web", ip="203.0.113.7", user_agent="Mozilla/5.0", detail="homepage form")


def test_idn_and_letter_case_are_one_subscriber(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        sub = subs.add_subscriber(s, " Ion@BÜCHER.de ", name="Ștefan Mureșan",
                                  topics=["Sport", " local"], frequency=Frequency.WEEKLY)
        assert sub.email == "ion@bücher.de"
        assert sub.topics == ["local", "sport"]
    with sessions.begin() as s, pytest.raises(InvalidInput, match="already"):
        subs.add_subscriber(s, "ION@bücher.DE")
    with sessions() as s:
        found = subs.get_subscriber(s, "ion@BÜCHER.de")
        assert found.name == "Ștefan Mureșan"
        assert found.frequency is Frequency.WEEKLY


def test_invalid_address_has_a_hint(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s, pytest.raises(InvalidInput) as info:
        subs.add_subscriber(s, "ana@")
    assert info.value.hint


def test_pending_confirm_unsubscribe_are_recorded_and_idempotent(
        sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        sub = subs.add_subscriber(s, "iulia@exemplu.ro", name="Iulia Bălan",
                                  status=SubscriberStatus.PENDING, origin=WEB)
        assert subs.confirm(s, sub, WEB) is True
        assert subs.confirm(s, sub, WEB) is False
        assert subs.unsubscribe(s, sub, subs.Origin("one-click")) is True
        assert subs.unsubscribe(s, sub, subs.Origin("one-click")) is False
        history = subs.consent_history(s, sub)
    assert [e["kind"] for e in history] == ["subscribe", "confirm", "unsubscribe"]
    assert history[0]["ip"] == "203.0.113.7" and history[0]["detail"] == "homepage form"
    with sessions() as s:
        assert subs.get_subscriber(s, "iulia@exemplu.ro").status is SubscriberStatus.UNSUBSCRIBED


def test_erase_removes_personal_data_and_blocks_re_adding(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        sub = subs.add_subscriber(s, "ana@exemplu.ro", name="Ana", origin=WEB)
        subs.erase(s, sub, subs.Origin("cli"))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 0
        events = s.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [e.kind for e in events] == [ConsentKind.SUBSCRIBE, ConsentKind.ERASE]
        assert all(e.subscriber_id is None and e.ip is None for e in events)
        assert subs.is_suppressed(s, "ANA@exemplu.ro")
    with sessions.begin() as s, pytest.raises(Suppressed):
        subs.add_subscriber(s, "ana@exemplu.ro")


def test_personal_data_export_includes_consent(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        sub = subs.add_subscriber(s, "ana@exemplu.ro", name="Ana Bălan", origin=WEB)
        subs.update_preferences(s, sub, WEB, topics=["cultura"], plain_text_only=True)
        data = subs.personal_data(s, sub)
    assert data["subscriber"]["name"] == "Ana Bălan"
    assert data["subscriber"]["plain_text_only"] is True
    assert [e["kind"] for e in data["consent_history"]] == ["subscribe", "preferences"]
    assert "topics=cultura" in data["consent_history"][1]["detail"]
