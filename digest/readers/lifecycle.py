"""Subscriber lifecycle: add, look up, confirm, unsubscribe, change preferences, erase; every
change that concerns consent is recorded as a ``ConsentEvent`` in the same transaction.

Functions take an open ``Session`` and never commit: the caller owns the transaction, so a web
request or a CLI command is all-or-nothing. Erasing keeps only a keyed hash of the address in
``suppressions``, so the address cannot be silently re-added later.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config.errors import InvalidInput, NotFound, Suppressed
from digest.readers.addresses import accept_address, clean_text, email_hash, normalize_email
from digest.readers.fields import (
    clean_topics,
    parse_send_hour,
    parse_timezone,
)
from digest.store.models import (
    BounceEvent,
    ConsentEvent,
    ConsentKind,
    Delivery,
    Frequency,
    Meta,
    Subscriber,
    SubscriberStatus,
    Suppression,
    utcnow,
)

__all__ = [
    "Origin",
    "add_subscriber",
    "clean_topics",
    "confirm",
    "erase",
    "find_subscriber",
    "get_subscriber",
    "is_suppressed",
    "mark_bounced",
    "mark_complained",
    "personal_data",
    "record_event",
    "suppress",
    "suppression_key",
    "unsubscribe",
    "update_preferences",
]

_SUPPRESSION_KEY = "suppression_hash_key"


@dataclass(frozen=True)
class Origin:
    """Where a change came from: kept as consent evidence."""

    source: str = "cli"
    ip: str | None = None
    user_agent: str | None = None
    detail: str | None = None


def record_event(session: Session, subscriber: Subscriber | None, kind: ConsentKind,
                 origin: Origin, at: dt.datetime | None = None) -> ConsentEvent:
    event = ConsentEvent(
        subscriber_id=subscriber.id if subscriber is not None else None,
        kind=kind, at=at or utcnow(), source=origin.source, ip=origin.ip,
        user_agent=(origin.user_agent or None) and origin.user_agent[:400], detail=origin.detail,
    )
    session.add(event)
    return event


def suppression_key(session: Session) -> bytes:
    """This installation's random key for suppression hashes, created on first use."""
    row = session.get(Meta, _SUPPRESSION_KEY)
    if row is None:
        try:
            with session.begin_nested():
                session.add(Meta(key=_SUPPRESSION_KEY, value=secrets.token_hex(32)))
        except IntegrityError:  # another process created it first: use theirs
            pass
        row = session.get(Meta, _SUPPRESSION_KEY)
        assert row is not None
    return bytes.fromhex(row.value)


def is_suppressed(session: Session, email: str, key: bytes | None = None) -> bool:
    digest = email_hash(key or suppression_key(session), normalize_email(email))
    found = session.scalar(select(Suppression.id).where(Suppression.email_hash == digest))
    return found is not None


def suppress(session: Session, email: str, reason: str) -> None:
    digest = email_hash(suppression_key(session), normalize_email(email))
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        session.add(Suppression(email_hash=digest, reason=reason))


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalize_email(email)))


def get_subscriber(session: Session, email: str) -> Subscriber:
    found = find_subscriber(session, email)
    if found is None:
        raise NotFound(f"No subscriber {email!r}.", "list them with `digest subscribers list`")
    return found


def add_subscriber(
    session: Session, email: str, *, name: str | None = None,
    topics: Sequence[str] = (), frequency: Frequency = Frequency.DAILY,
    timezone: str | None = None, locale: str | None = None,
    status: SubscriberStatus = SubscriberStatus.ACTIVE, origin: Origin = Origin(),
    kind: ConsentKind = ConsentKind.SUBSCRIBE, allow_reserved: bool = False,
    send_hour: int | str | None = None,
) -> Subscriber:
    """Create a subscriber (``Suppressed`` if erased before; ``InvalidInput`` if it exists or
    the address breaks the one address rule, ``accept_address``: ``allow_reserved`` is
    ``DIGEST_ALLOW_RESERVED_DOMAINS``)."""
    address = accept_address(email, allow_reserved=allow_reserved)
    if is_suppressed(session, address):
        raise Suppressed(f"{address} was erased or suppressed and cannot be re-added.",
                         "the reader must sign up again through the web form themselves")
    if find_subscriber(session, address) is not None:
        raise InvalidInput(f"{address} is already a subscriber.",
                           "see it with `digest subscribers show`")
    now = utcnow()
    subscriber = Subscriber(
        email=address, name=clean_text(name), status=status,
        topics=clean_topics(topics), frequency=frequency, timezone=parse_timezone(timezone),
        send_hour=parse_send_hour(send_hour), locale=clean_text(locale),
        plain_text_only=False, created_at=now, updated_at=now,
        confirmed_at=now if status is SubscriberStatus.ACTIVE else None,
    )
    session.add(subscriber)
    session.flush()
    record_event(session, subscriber, kind, origin, at=now)
    return subscriber


def confirm(session: Session, subscriber: Subscriber, origin: Origin) -> bool:
    """Activate a pending subscriber. Idempotent: returns False when nothing changed."""
    if subscriber.status is not SubscriberStatus.PENDING:
        return False
    subscriber.status = SubscriberStatus.ACTIVE
    subscriber.confirmed_at = utcnow()
    record_event(session, subscriber, ConsentKind.CONFIRM, origin)
    return True


def unsubscribe(session: Session, subscriber: Subscriber, origin: Origin) -> bool:
    """Stop all mail to this subscriber. Idempotent: returns False when already out."""
    if subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED,
                             SubscriberStatus.COMPLAINED):
        return False
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = utcnow()
    record_event(session, subscriber, ConsentKind.UNSUBSCRIBE, origin)
    return True


def update_preferences(session: Session, subscriber: Subscriber, origin: Origin, *,
                       topics: Sequence[str] | None = None, frequency: Frequency | None = None,
                       plain_text_only: bool | None = None, locale: str | None = None,
                       send_hour: int | Literal["keep"] | None = "keep") -> None:
    """Change what is given; ``send_hour=None`` means "back to DIGEST_SEND_HOUR"."""
    changes: list[str] = []
    if send_hour != "keep" and send_hour != subscriber.send_hour:
        subscriber.send_hour = parse_send_hour(send_hour)
        changes.append(f"send_hour={'default' if send_hour is None else send_hour}")
    if topics is not None and clean_topics(topics) != subscriber.topics:
        subscriber.topics = clean_topics(topics)
        changes.append(f"topics={','.join(subscriber.topics) or '(all)'}")
    if frequency is not None and frequency is not subscriber.frequency:
        subscriber.frequency = frequency
        changes.append(f"frequency={frequency.value}")
    if plain_text_only is not None and plain_text_only != subscriber.plain_text_only:
        subscriber.plain_text_only = plain_text_only
        changes.append(f"plain_text_only={plain_text_only}")
    if locale is not None and locale != subscriber.locale:
        subscriber.locale = locale
        changes.append(f"locale={locale}")
    if changes:
        detail = "; ".join(changes)
        record_event(session, subscriber, ConsentKind.PREFERENCES,
                     Origin(origin.source, origin.ip, origin.user_agent, detail))


def erase(session: Session, subscriber: Subscriber, origin: Origin) -> None:
    """Delete the subscriber's personal data and keep a suppression hash of the address.

    Consent events lose their link and their IP/user agent (personal data); an ``erase`` event
    without personal data records that the erasure happened.
    """
    suppress(session, subscriber.email, reason="erased")
    for event in session.scalars(select(ConsentEvent).where(
            ConsentEvent.subscriber_id == subscriber.id)):
        event.subscriber_id = None
        event.ip = None
        event.user_agent = None
    session.delete(subscriber)
    session.flush()
    record_event(session, None, ConsentKind.ERASE, Origin(origin.source, detail=origin.detail))


def mark_bounced(session: Session, subscriber: Subscriber, reply: str,
                 source: str = "smtp") -> None:
    """A hard bounce (5.1.x): stop mailing and suppress the address."""
    if subscriber.status is SubscriberStatus.BOUNCED:
        return
    subscriber.status = SubscriberStatus.BOUNCED
    suppress(session, subscriber.email, reason="bounced")
    record_event(session, subscriber, ConsentKind.BOUNCE, Origin(source, detail=reply[:500]))


def mark_complained(session: Session, subscriber: Subscriber, evidence: str, source: str) -> bool:
    """A spam complaint: stop mailing, suppress, and record it as a withdrawal of consent."""
    if subscriber.status is SubscriberStatus.COMPLAINED:
        return False
    subscriber.status = SubscriberStatus.COMPLAINED
    suppress(session, subscriber.email, reason="complained")
    record_event(session, subscriber, ConsentKind.COMPLAINT, Origin(source, detail=evidence[:500]))
    return True


def as_dict(subscriber: Subscriber) -> dict[str, Any]:
    """The public view used by list/show/export (JSON-ready)."""
    return {
        "email": subscriber.email, "name": subscriber.name, "status": subscriber.status.value,
        "topics": list(subscriber.topics), "frequency": subscriber.frequency.value,
        "timezone": subscriber.timezone, "send_hour": subscriber.send_hour,
        "locale": subscriber.locale, "plain_text_only": subscriber.plain_text_only,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
        "unsubscribed_at": (subscriber.unsubscribed_at.isoformat()
                            if subscriber.unsubscribed_at else None),
    }


def consent_history(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    events = session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber.id)
                             .order_by(ConsentEvent.at, ConsentEvent.id))
    return [{"kind": e.kind.value, "at": e.at.isoformat(), "source": e.source, "ip": e.ip,
             "user_agent": e.user_agent, "detail": e.detail} for e in events]


def personal_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about one reader ("download my data")."""
    deliveries = session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber.id)
                                 .order_by(Delivery.id))
    return {
        "subscriber": as_dict(subscriber),
        "consent_history": consent_history(session, subscriber),
        "deliveries": [{"edition_id": d.edition_id, "state": d.state.value,
                        "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                        "message_id": d.message_id, "article_ids": list(d.article_ids)}
                       for d in deliveries],
        "bounces_and_complaints": [
            {"kind": b.kind.value, "received_at": b.received_at.isoformat(), "status": b.status,
             "diagnostic": b.diagnostic, "source": b.source, "edition_id": b.edition_id}
            for b in session.scalars(select(BounceEvent).where(
                BounceEvent.subscriber_id == subscriber.id).order_by(BounceEvent.id))],
    }
