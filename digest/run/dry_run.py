"""``digest send --dry-run``: compose and render every due reader's message, send and record
nothing (no edition, no delivery row, no lock).

Readers are read page by page, so a dry run over 100,000 readers needs no more memory than one
page; it is also a fair measure of the compose + render cost without the network.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine

from digest.compose import ArticleView, EditionView, compose, edition_cutoff
from digest.config.settings import Settings
from digest.delivery.plan import due_readers, find_edition
from digest.delivery.schedule import DueGroup
from digest.delivery.snapshots import edition_view_for, load_candidates, readers_for
from digest.render.message import Renderer
from digest.run.options import SendOptions, groups_for
from digest.run.report import RunReport

__all__ = ["dry_run"]


def _views(conn: Connection, settings: Settings, options: SendOptions, groups: list[DueGroup]
           ) -> tuple[list[int | None], list[EditionView]]:
    """Each group's edition (if it exists yet) and the edition as its readers would get it:
    with the run's instant as cutoff (a manual edition: the existing edition's cutoff)."""
    at = options.clock
    ids, views = [], []
    for g in groups:
        found = find_edition(conn, g.frequency, g.date)
        ids.append(found)
        if found is not None and not options.schedule:
            views.append(edition_view_for(conn, found, settings.timezone))
        else:
            cutoff = at if options.schedule else edition_cutoff(g.date, settings.timezone, at)
            views.append(EditionView(found or 0, g.frequency, g.date, cutoff))
    return ids, views


def dry_run(engine: Engine, settings: Settings, options: SendOptions, report: RunReport) -> None:
    renderer = Renderer(settings)
    lookback = dt.timedelta(days=settings.max_lookback_days)
    distinct: set[int] = set()
    with engine.connect() as conn:
        groups = groups_for(conn, settings, options)
        ids, views = _views(conn, settings, options, groups)
        candidates: dict[EditionView, list[ArticleView]] = {}
        # Readers already done for an existing edition are not due: the planner's own query.
        due = due_readers(groups, settings.send_hour, ids).subquery()
        after, used = 0, set() if options.schedule else {0}
        while rows := conn.execute(due.select().where(due.c.id > after).order_by(due.c.id)
                                   .limit(settings.batch_size)).all():
            since = min(views[r.slot].cutoff for r in rows) - lookback
            readers, _ = readers_for(conn, [r.id for r in rows], since)
            for row in rows:
                view = views[row.slot]
                used.add(row.slot)
                if view not in candidates:
                    candidates[view] = load_candidates(conn, view, lookback)
                digest = compose(candidates[view], readers[row.id], view,
                                 max_items=settings.max_items, max_lookback=lookback)
                if digest is None:
                    report.skipped += 1
                    continue
                renderer.render(digest).message_for(readers[row.id])
                distinct.add(hash(digest))
                report.composed += 1
            report.planned += len(rows)
            after = rows[-1].id
    shown = {(views[i].frequency.value, views[i].date.isoformat()): ids[i] for i in sorted(used)}
    report.set_editions([(i, f, d) for (f, d), i in shown.items()])
    report.distinct_digests = len(distinct)
