"""``digest status``: the newest editions with their delivery counts by state; and what one
edition still has to do after a run (``unfinished``), which decides the run's exit code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select

from digest.store.models import Delivery, DeliveryState, Edition, Frequency

__all__ = ["Unfinished", "status", "unfinished"]

D = cast(Table, Delivery.__table__)
E = cast(Table, Edition.__table__)


def status(conn: Connection, limit: int = 30) -> list[dict[str, Any]]:
    """The newest editions with their delivery counts by state."""
    editions = conn.execute(select(E.c.id, E.c.frequency, E.c.date)
                            .order_by(E.c.date.desc(), E.c.id.desc()).limit(limit)).all()
    counts: dict[int, dict[str, int]] = {
        e.id: {state.value: 0 for state in DeliveryState} for e in editions}
    if editions:
        for edition_id, state, count in conn.execute(
                select(D.c.edition_id, D.c.state, func.count())
                .where(D.c.edition_id.in_(list(counts)))
                .group_by(D.c.edition_id, D.c.state)):
            counts[edition_id][DeliveryState(state).value] = count
    return [{"id": e.id, "frequency": Frequency(e.frequency).value, "date": e.date.isoformat(),
             "counts": counts[e.id]} for e in editions]


@dataclass(frozen=True)
class Unfinished:
    """An edition's deliveries that a run left to a later one."""

    pending: int = 0
    deferred: int = 0
    next_retry_at: dt.datetime | None = None  # the earliest deferred retry

    def __bool__(self) -> bool:
        return bool(self.pending or self.deferred)


def unfinished(conn: Connection, edition_ids: Sequence[int]) -> Unfinished:
    """How many deliveries of these editions (a run's: one, or one per due group) are still
    pending or deferred, read from the ledger (not from what one run saw: a rerun that
    attempted nothing still leaves them)."""
    counts = {DeliveryState(state): count for state, count in conn.execute(
        select(D.c.state, func.count()).where(
            D.c.edition_id.in_(edition_ids),
            D.c.state.in_([DeliveryState.PENDING, DeliveryState.DEFERRED]))
        .group_by(D.c.state))}
    retry = conn.scalar(select(func.min(D.c.next_attempt_at)).where(
        D.c.edition_id.in_(edition_ids), D.c.state == DeliveryState.DEFERRED))
    return Unfinished(pending=counts.get(DeliveryState.PENDING, 0),
                      deferred=counts.get(DeliveryState.DEFERRED, 0), next_retry_at=retry)
