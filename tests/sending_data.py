"""Test data for the sending tests: a few articles and readers, written with the ORM."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from digest.readers.lifecycle import add_subscriber
from digest.store.models import Article, Frequency, SubscriberStatus, utcnow

TITLES = [
    ("Podul de la Golești se redeschide după reparații", ["local"]),
    ("Festivalul „Zilele Piteștiului” aduce concerte în centrul orașului", ["cultura"]),
    ("Școlile din Argeș primesc laboratoare noi de informatică", ["educatie"]),
    ("FC Argeș câștigă derby-ul și urcă pe locul trei", ["sport"]),
]


def add_articles(sessions: sessionmaker[Session], hours_ago: float = 2.0,
                 prefix: str = "a", before: dt.datetime | None = None) -> list[int]:
    """Articles published ``hours_ago`` and more before ``before`` (default now)."""
    now = before or utcnow()
    with sessions() as session:
        articles = [
            Article(url=f"https://stiri.example.ro/{prefix}{i}", guid=f"{prefix}{i}", title=title,
                    summary_html=f"<p>{title}: pe scurt.</p>", summary_text=f"{title}: pe scurt.",
                    topics=topics, published_at=now - dt.timedelta(hours=hours_ago + i))
            for i, (title, topics) in enumerate(TITLES)
        ]
        session.add_all(articles)
        session.commit()
        return [a.id for a in articles]


def add_readers(sessions: sessionmaker[Session], emails: list[str], **kwargs: object) -> None:
    with sessions() as session:
        for address in emails:
            add_subscriber(session, address, name="Cititor Ăîșț", **kwargs)  # type: ignore[arg-type]
        session.commit()


def add_others(sessions: sessionmaker[Session]) -> None:
    """Readers who must get nothing: weekly, unconfirmed, and one whose topic has no news."""
    with sessions() as session:
        add_subscriber(session, "saptamanal@example.ro", frequency=Frequency.WEEKLY)
        add_subscriber(session, "neconfirmat@example.ro", status=SubscriberStatus.PENDING)
        add_subscriber(session, "meteo@example.ro", topics=["meteo"])
        session.commit()
