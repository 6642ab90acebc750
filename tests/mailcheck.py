"""Test helpers for the digest email: sample digests, and the DESIGN.md standards checklist
(``digest.render.checklist``) asserted on raw message bytes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage

from digest.compose import ArticleView, Digest, EditionView, ReaderView
from digest.render.checklist import check_message
from digest.store.models import Frequency

__all__ = [
    "CUTOFF",
    "EDITION",
    "STEFAN",
    "assert_checklist",
    "long_article",
    "parse",
    "sample_articles",
    "sample_digest",
]

CUTOFF = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)  # 07:00 in Bucharest
EDITION = EditionView(7, Frequency.DAILY, dt.date(2026, 11, 28), CUTOFF)
STEFAN = ReaderView(42, "stefan.muresan@example.ro", "Ștefan Mureșan")
NASTY_TITLE = "Primarul a spus „Nu” și “altceva” <script>alert('x')</script> & alte știri"

_WORDS = ("Consiliul Județean Argeș a aprobat miercuri bugetul pentru drumurile din zonă, "
          "iar lucrările încep în primăvară, după licitația organizată de primărie. ")


def long_article(i: int, *, hours: float = 1.0, topics: tuple[str, ...] = (),
                 title: str | None = None, image: bool = False) -> ArticleView:
    return ArticleView(
        id=i, url=f"https://stiri.example.ro/articol/{i}-drumuri-judetene",
        title=title or f"Știrea numărul {i}: drumurile județene intră în reparații",
        summary_text=_WORDS * 12, summary_html=f"<p>{_WORDS * 12}</p>",
        published_at=CUTOFF - dt.timedelta(hours=hours + i / 10), topics=topics,
        image_url=f"https://stiri.example.ro/img/{i}.jpg" if image else None,
        author="Ana Popescu" if i % 2 else None,
    )


def sample_articles() -> tuple[ArticleView, ...]:
    return (
        long_article(1, title=NASTY_TITLE, image=True),
        long_article(2),
        long_article(3, image=True),
    )


def sample_digest(plain_text_only: bool = False) -> Digest:
    return Digest(EDITION, sample_articles(), plain_text_only)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_checklist(data: bytes, *, unsubscribe_url: str | None = None,
                     postal_address: str | None = None, html_expected: bool = True,
                     privacy_url: str | None = None, dkim: bool = False) -> EmailMessage:
    """Every line of DESIGN.md's standards checklist that applies to one message: the
    package's own checklist (``digest check`` and ``digest send`` run the same) finds nothing."""
    findings = check_message(data, unsubscribe_url=unsubscribe_url, privacy_url=privacy_url,
                             postal_address=postal_address, html_expected=html_expected,
                             dkim=dkim)
    assert not findings, "\n".join(map(str, findings))
    return parse(data)
