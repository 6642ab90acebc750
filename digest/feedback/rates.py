"""How each edition fared after the 250: bounce and complaint rates, and the recent events.

Rates are per edition, over the deliveries sent: ``bounce_rate`` counts readers with any bounce
(hard, soft or policy) attributed to that edition, ``complaint_rate`` readers who complained.
Gmail and Yahoo ask bulk senders to stay under 0.1 % complaints and throttle or block past
0.3 %: ``complaint_level`` says where an edition stands.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select

from digest.store.models import BounceEvent, BounceKind, Delivery, DeliveryState, Edition

__all__ = ["COMPLAINT_ALARM", "COMPLAINT_WARN", "Level", "complaint_level", "edition_rates",
           "last_sent_rates", "recent_events"]

COMPLAINT_WARN = 0.001  # 0.1 %: Gmail's and Yahoo's "stay below"
COMPLAINT_ALARM = 0.003  # 0.3 %: past this they throttle, then block

B = cast(Table, BounceEvent.__table__)
D = cast(Table, Delivery.__table__)
E = cast(Table, Edition.__table__)


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    ALARM = "alarm"


def complaint_level(rate: float) -> Level:
    if rate > COMPLAINT_ALARM:
        return Level.ALARM
    if rate > COMPLAINT_WARN:
        return Level.WARN
    return Level.OK


def edition_rates(conn: Connection, edition_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per edition: sent, bounced and complained readers, and the two rates."""
    ids = list(edition_ids)
    out: dict[int, dict[str, Any]] = {
        i: {"sent": 0, "bounces": 0, "hard_bounces": 0, "complaints": 0} for i in ids}
    if not ids:
        return out
    for edition_id, sent in conn.execute(
            select(D.c.edition_id, func.count()).where(D.c.edition_id.in_(ids),
                                                       D.c.state == DeliveryState.SENT.value)
            .group_by(D.c.edition_id)):
        out[edition_id]["sent"] = sent
    # An event has an edition only when it was matched to one of our readers.
    for edition_id, kind, readers in conn.execute(
            select(B.c.edition_id, B.c.kind, func.count(func.distinct(B.c.subscriber_id)))
            .where(B.c.edition_id.in_(ids)).group_by(B.c.edition_id, B.c.kind)):
        row = out[edition_id]
        if kind == BounceKind.COMPLAINT.value:
            row["complaints"] += readers
        else:
            row["bounces"] += readers
            if kind == BounceKind.HARD.value:
                row["hard_bounces"] += readers
    for row in out.values():
        sent = row["sent"]
        row["bounce_rate"] = round(row["bounces"] / sent, 6) if sent else 0.0
        row["complaint_rate"] = round(row["complaints"] / sent, 6) if sent else 0.0
        row["complaint_level"] = complaint_level(row["complaint_rate"]).value
    return out


def recent_events(conn: Connection, since: dt.datetime | None,
                  limit: int = 1000) -> list[dict[str, Any]]:
    """Bounce and complaint events, newest first."""
    query = select(B.c.received_at, B.c.kind, B.c.recipient, B.c.status, B.c.action,
                   B.c.source, B.c.edition_id, B.c.diagnostic, B.c.report_key)
    if since is not None:
        query = query.where(B.c.received_at >= since)
    rows = conn.execute(query.order_by(B.c.received_at.desc(), B.c.id.desc()).limit(limit))
    return [{"received_at": r.received_at.isoformat(), "kind": r.kind, "recipient": r.recipient,
             "status": r.status, "action": r.action,
             "source": r.source, "edition_id": r.edition_id,
             "diagnostic": (r.diagnostic or "")[:200] or None, "report_key": r.report_key}
            for r in rows]


def last_sent_rates(conn: Connection, count: int = 2) -> list[dict[str, Any]]:
    """The rates of the newest ``count`` editions that sent anything, newest first."""
    sent = select(D.c.edition_id).where(D.c.state == DeliveryState.SENT.value).distinct()
    editions = conn.execute(select(E.c.id, E.c.frequency, E.c.date).where(E.c.id.in_(sent))
                            .order_by(E.c.date.desc(), E.c.id.desc()).limit(count)).all()
    rates = edition_rates(conn, [e.id for e in editions])
    return [{"edition": {"id": e.id, "frequency": e.frequency, "date": e.date.isoformat()},
             **rates[e.id]} for e in editions]
