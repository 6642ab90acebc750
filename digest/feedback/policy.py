"""What a report changes (the only writer of the feedback package).

For each finding: find the delivery -- the signed VERP token in the address the report came
back to, else our own Message-ID quoted in the report (it names edition and subscriber and
carries this installation's tag), else the recipient address and that reader's latest sent
delivery. Then record one ``BounceEvent`` per (report, recipient) -- a report seen before
changes nothing -- and act:

- hard: the reader becomes ``bounced`` and is suppressed;
- soft: counted; ``DIGEST_SOFT_BOUNCE_LIMIT`` distinct deliveries (editions) soft-bouncing
  within ``DIGEST_SOFT_BOUNCE_DAYS`` make the reader ``bounced`` (one digest's retries and
  delay warnings count once);
- policy: recorded only (a block of our IP or content is not the reader's fault);
- complaint: the reader becomes ``complained``, is suppressed, and a consent event says why.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config.settings import Settings
from digest.feedback.report import Finding, Kind, Report
from digest.readers.addresses import normalize_email
from digest.readers.lifecycle import find_subscriber, mark_bounced, mark_complained
from digest.render.identity import installation_tag
from digest.render.tokens import InvalidToken, read_bounce_token
from digest.store.models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryState,
    Edition,
    Subscriber,
    SubscriberStatus,
)

__all__ = ["Action", "Outcome", "apply_report"]

_OUR_MESSAGE_ID = re.compile(r"<digest\.(\d+)\.(\d+)\.([0-9a-f]{12})@")
_OUT = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


class Action(enum.StrEnum):
    """What processing a finding did (the ``action`` of ``digest bounces process``)."""

    BOUNCED = "bounced"  # the reader is now bounced and suppressed
    COUNTED = "counted"  # a soft bounce, counted towards the limit
    RECORDED = "recorded"  # a policy block: recorded, the reader stays
    COMPLAINED = "complained"  # the reader is now complained and suppressed
    ALREADY_OUT = "already-out"  # recorded; the reader was already bounced or complained
    DUPLICATE = "duplicate"  # this report was processed before: nothing changed
    UNKNOWN_RECIPIENT = "unknown-recipient"  # nobody we mail: recorded, nothing to change
    NONE = "none"  # an auto-reply or an unrecognized message


@dataclass(frozen=True)
class Outcome:
    finding: Finding
    action: Action
    subscriber: str | None
    edition_id: int | None
    matched_by: str  # verp, message-id, recipient, none


def _by_token(settings: Settings, report: Report) -> tuple[int, int] | None:
    return_path, secret = settings.feedback.return_path, settings.secret_key
    if not return_path or not secret or len(report.findings) != 1:
        return None
    prefix = return_path.rpartition("@")[0].lower() + "+"
    for address in report.return_paths:
        local = address.rpartition("@")[0].lower()
        if local.startswith(prefix):
            try:
                return read_bounce_token(secret, local[len(prefix):])
            except InvalidToken:
                continue
    return None


def _by_message_id(settings: Settings, report: Report) -> tuple[int, int] | None:
    if not settings.secret_key or len(report.findings) != 1:
        return None
    tag = installation_tag(settings.secret_key)
    for message_id in report.original_message_ids:
        match = _OUR_MESSAGE_ID.match(message_id)
        if match and match.group(3) == tag:
            return int(match.group(1)), int(match.group(2))
    return None


def _locate(session: Session, settings: Settings, report: Report,
            finding: Finding) -> tuple[Subscriber | None, int | None, str]:
    for how, found in (("verp", _by_token(settings, report)),
                       ("message-id", _by_message_id(settings, report))):
        if found is not None:
            subscriber = session.get(Subscriber, found[1])
            if subscriber is not None:  # the edition may be gone (deleted) since
                edition = found[0] if session.get(Edition, found[0]) is not None else None
                return subscriber, edition, how
    if "@" not in finding.recipient:
        return None, None, "none"
    try:
        subscriber = find_subscriber(session, finding.recipient)
    except ValueError:  # not an address we could ever have stored
        subscriber = None
    if subscriber is None:
        return None, None, "none"
    edition = session.scalar(select(Delivery.edition_id).where(
        Delivery.subscriber_id == subscriber.id, Delivery.state == DeliveryState.SENT)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc()).limit(1))
    return subscriber, edition, "recipient"


def _recipient(subscriber: Subscriber | None, finding: Finding) -> str:
    if subscriber is not None:
        return subscriber.email
    try:
        return normalize_email(finding.recipient)[:320]
    except ValueError:
        return finding.recipient.strip().lower()[:320]


def _soft_limit_reached(session: Session, settings: Settings, subscriber: Subscriber,
                        now: dt.datetime) -> bool:
    since = now - dt.timedelta(days=settings.feedback.soft_bounce_days)
    rows = session.execute(select(BounceEvent.edition_id, BounceEvent.report_key).where(
        BounceEvent.subscriber_id == subscriber.id, BounceEvent.kind == BounceKind.SOFT,
        BounceEvent.received_at >= since)).all()
    deliveries = {("e", e) if e is not None else ("r", key) for e, key in rows}
    return len(deliveries) >= settings.feedback.soft_bounce_limit


def _act(session: Session, settings: Settings, subscriber: Subscriber | None,
         finding: Finding, evidence: str, source: str, now: dt.datetime) -> Action:
    if finding.kind is Kind.POLICY:
        return Action.RECORDED
    if subscriber is None:
        return Action.UNKNOWN_RECIPIENT
    if subscriber.status in _OUT and not (finding.kind is Kind.COMPLAINT
                                          and subscriber.status is SubscriberStatus.BOUNCED):
        return Action.ALREADY_OUT
    if finding.kind is Kind.COMPLAINT:
        mark_complained(session, subscriber, evidence, source)
        return Action.COMPLAINED
    if finding.kind is Kind.SOFT and not _soft_limit_reached(session, settings, subscriber, now):
        return Action.COUNTED
    if finding.kind is Kind.SOFT:
        evidence = (f"{settings.feedback.soft_bounce_limit} soft bounces within "
                    f"{settings.feedback.soft_bounce_days} days; last: {evidence}")
    mark_bounced(session, subscriber, evidence, source)
    return Action.BOUNCED


def _seen(session: Session, key: str, recipient: str) -> bool:
    return session.scalar(select(BounceEvent.id).where(
        BounceEvent.report_key == key, BounceEvent.recipient == recipient)) is not None


def apply_report(session: Session, settings: Settings, report: Report,
                 now: dt.datetime) -> list[Outcome]:
    """Record and act on every finding of ``report`` (the caller commits)."""
    outcomes = []
    for finding in report.findings:
        subscriber, edition_id, how = _locate(session, settings, report, finding)
        recipient = _recipient(subscriber, finding)
        email = subscriber.email if subscriber is not None else None
        if subscriber is None and "@" not in recipient:
            outcomes.append(Outcome(finding, Action.UNKNOWN_RECIPIENT, None, None, how))
            continue
        event = BounceEvent(report_key=report.key, recipient=recipient,
                            kind=BounceKind(finding.kind.value),
                            subscriber_id=subscriber.id if subscriber else None,
                            edition_id=edition_id, status=finding.status,
                            diagnostic=finding.diagnostic, source=report.source.value,
                            action=Action.NONE.value, received_at=now)
        if _seen(session, report.key, recipient):
            outcomes.append(Outcome(finding, Action.DUPLICATE, email, edition_id, how))
            continue
        try:
            with session.begin_nested():
                session.add(event)
                session.flush()
        except IntegrityError:
            if not _seen(session, report.key, recipient):
                raise
            # another process recorded the same report a moment ago
            outcomes.append(Outcome(finding, Action.DUPLICATE, email, edition_id, how))
            continue
        evidence = (f"{report.source.value} {finding.status or '-'}: "
                    f"{(finding.diagnostic or '')[:300]} (report {report.key})")
        action = _act(session, settings, subscriber, finding, evidence, report.source.value, now)
        event.action = action.value
        outcomes.append(Outcome(finding, action, email, edition_id, how))
    return outcomes
