"""``digest send --dry-run``: compose and render every due reader's message, send and record
nothing (no edition, no delivery row, no lock).

Readers are read page by page, so a dry run over 100,000 readers needs no more memory than one
page; it is also a fair measure of the compose + render cost without the network.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Engine, Table, and_, exists, select

from digest.compose import EditionView, compose, edition_cutoff
from digest.config.settings import Settings
from digest.delivery.snapshots import edition_view_for, readers_for
from digest.render.message import Renderer
from digest.run.report import RunReport
from digest.store.models import (
    Delivery,
    DeliveryState,
    Edition,
    Frequency,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

__all__ = ["dry_run"]

D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)
_DONE = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED)


def dry_run(engine: Engine, settings: Settings, frequency: Frequency, day: dt.date,
            report: RunReport) -> None:
    from digest.run.commands import load_candidates

    renderer = Renderer(settings)
    lookback = dt.timedelta(days=settings.max_lookback_days)
    distinct: set[int] = set()
    with engine.connect() as conn:
        edition_id = conn.scalar(select(E.c.id).where(E.c.frequency == frequency,
                                                      E.c.date == day))
        view = (edition_view_for(conn, edition_id, settings.timezone) if edition_id is not None
                else EditionView(0, frequency, day,
                                 edition_cutoff(day, settings.timezone, utcnow())))
        candidates = load_candidates(conn, view, lookback)
        due = select(S.c.id).where(S.c.status == SubscriberStatus.ACTIVE,
                                   S.c.frequency == frequency)
        if edition_id is not None:  # readers already done for this edition are not due
            due = due.where(~exists().where(and_(D.c.edition_id == edition_id,
                                                 D.c.subscriber_id == S.c.id,
                                                 D.c.state.in_(_DONE))))
        after = 0
        while ids := list(conn.scalars(due.where(S.c.id > after).order_by(S.c.id)
                                       .limit(settings.batch_size))):
            readers, _ = readers_for(conn, ids, view.cutoff - lookback)
            for reader in readers.values():
                digest = compose(candidates, reader, view, max_items=settings.max_items,
                                 max_lookback=lookback)
                if digest is None:
                    report.skipped += 1
                    continue
                renderer.render(digest).message_for(reader)
                distinct.add(hash(digest))
                report.composed += 1
            report.planned += len(ids)
            after = ids[-1]
    report.edition_id, report.edition_date = edition_id, day.isoformat()
    report.distinct_digests = len(distinct)
