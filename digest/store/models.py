"""SQLAlchemy 2 typed models: subscribers, consent, suppression, feeds, articles, editions,
deliveries, bounce events.

All timestamps are stored as UTC and come back timezone-aware (``UTCDateTime``), on SQLite too.
Enums are stored as short strings (no native enum types) so adding a state is a plain migration.
The MetaData naming convention gives every constraint a stable name for Alembic.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from digest.store.enums import (
    BounceKind,
    ConsentKind,
    DeliveryState,
    Frequency,
    SubscriberStatus,
)

__all__ = [
    "Article",
    "Base",
    "BounceEvent", "BounceKind",
    "ConsentEvent",
    "ConsentKind",
    "Delivery",
    "DeliveryState",
    "Edition",
    "Feed",
    "Frequency",
    "Meta",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "in_schema_of",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as naive UTC; returns aware UTC (SQLite drops tzinfo otherwise)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone first")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime}


def in_schema_of(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for ``dialect``: leaves out what is created on another
    dialect only (an ``Index(...).ddl_if(dialect=...)``), which autogenerate would otherwise
    report as missing there."""
    def include(obj: object, *_: object) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect in (None, dialect)
    return include


class Meta(Base):
    """Key/value facts about this installation (e.g. the suppression-hash key)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Normalized address (lower-cased, IDN domain in Unicode form): the identity of a subscriber.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # (No index of its own: ix_subscribers_status_frequency starts with it.)
    status: Mapped[SubscriberStatus] = mapped_column(_enum(SubscriberStatus))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    frequency: Mapped[Frequency] = mapped_column(_enum(Frequency), default=Frequency.DAILY)
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Local hour (0-23) the digest goes out in ``timezone``; NULL: DIGEST_SEND_HOUR.
    send_hour: Mapped[int | None] = mapped_column(Integer)
    locale: Mapped[str | None] = mapped_column(String(35))
    plain_text_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]
    # Throttles re-sent confirmation emails for repeated sign-ups of a pending address.
    confirmation_sent_at: Mapped[dt.datetime | None]
    # When this reader's last digest was sent: the start of their next digest window.
    last_digest_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_subscribers_status_frequency", "status", "frequency"),)


class ConsentEvent(Base):
    """Evidence of consent and its withdrawal: what happened, when, from where."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL after the subscriber is erased: the event row is anonymised, not kept personal.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[ConsentKind] = mapped_column(_enum(ConsentKind))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(40))  # cli, import, web, one-click, smtp ...
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[str | None] = mapped_column(Text)  # form name, consent text, file name ...


class Suppression(Base):
    """An address that must never be mailed or re-added, kept only as a keyed hash."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[dt.datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="SET NULL"), index=True
    )
    guid: Mapped[str | None] = mapped_column(String(2000), unique=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)  # canonical URL
    title: Mapped[str] = mapped_column(String(1000))
    summary_html: Mapped[str] = mapped_column(Text, default="")  # sanitized
    summary_text: Mapped[str] = mapped_column(Text, default="")  # plain-text excerpt
    content_html: Mapped[str | None] = mapped_column(Text)  # sanitized
    author: Mapped[str | None] = mapped_column(String(300))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    published_at: Mapped[dt.datetime] = mapped_column(index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Edition(Base):
    """One issue of the digest: a frequency and the *local* date it is for. A scheduled run
    files each reader under their own local date (a weekly reader: the date of their week's
    weekly day), so one edition is shared by readers in every timezone whose local date it is,
    and the unique (edition, subscriber) delivery means once per local day / week (see
    ``delivery.schedule``). A manual edition (``--date``) is dated in DIGEST_TIMEZONE."""

    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frequency: Mapped[Frequency] = mapped_column(_enum(Frequency))
    date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The article ids of the non-personalised web view (archive), fixed when first planned.
    article_ids: Mapped[list[int]] = mapped_column(JSON, default=list)

    __table_args__ = (UniqueConstraint("frequency", "date"),)


_PENDING_QUEUE = text("state = 'pending' AND next_attempt_at IS NULL")


class Delivery(Base):
    """The ledger: one row per (edition, subscriber); its state says what happened."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState),
                                                 default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    next_attempt_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(300))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    # The articles this reader got in this digest: so no article reaches them twice.
    article_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # This delivery's news cutoff, fixed when planned (a scheduled run: the run's instant, so a
    # reader in Tokyo and one in New York of the same edition each get the news up to their
    # own hour). NULL (rows planned before this column): the edition's cutoff.
    cutoff: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        # PostgreSQL: the queue the claims read, in id order from their cursor on
        # (``delivery.claims``); only pending rows are in it, so a claimed or finished row
        # costs it nothing more. (SQLite reads the index above in rowid order already.)
        Index("ix_deliveries_pending", "id",
              postgresql_where=_PENDING_QUEUE).ddl_if(dialect="postgresql"),
    )


class BounceEvent(Base):
    """One bounce or complaint for one recipient, with its evidence. (report_key, recipient) is
    unique -- the report's Message-ID, a provider's event id or a hash -- so a report processed
    twice is recorded once. Erasing the reader erases them (CASCADE): they are personal data."""

    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_key: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[BounceKind] = mapped_column(_enum(BounceKind))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("editions.id", ondelete="SET NULL"), index=True)
    status: Mapped[str | None] = mapped_column(String(20))  # 5.1.1; source: dsn, arf, ses ...
    diagnostic: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))  # what it changed: bounced, counted, ...
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    __table_args__ = (UniqueConstraint("report_key", "recipient"),)
