"""``digest status``: the newest editions with their delivery counts by state."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, func, select

from digest.store.models import Delivery, DeliveryState, Edition, Frequency

__all__ = ["status"]

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
