"""``digest send --dry-run``: compose and render every due reader's message, send and record
nothing (no edition, no delivery row, no lock).

Readers are read page by page, so a dry run over 100,000 readers needs no more memory than one
page; it is also a fair measure of the compose + render cost without the network.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Engine, Table, select

from digest.compose import EditionView, compose, edition_cutoff
from digest.config.settings import Settings
from digest.delivery.plan import due_readers
from digest.delivery.snapshots import edition_view_for, load_candidates, readers_for
from digest.render.message import Renderer
from digest.run.report import RunReport
from digest.store.models import Edition, Frequency, Subscriber, utcnow

__all__ = ["dry_run"]

S = cast(Table, Subscriber.__table__)
E = cast(Table, Edition.__table__)


def dry_run(engine: Engine, settings: Settings, frequency: Frequency, day: dt.date,
            report: RunReport) -> None:
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
        # Readers already done for an existing edition are not due: the planner's own query.
        due = due_readers(frequency, edition_id)
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
