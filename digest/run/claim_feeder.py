"""Claim the next batch of deliveries, with its readers, while the current one is sent.

One batch ahead at most, so memory stays flat and claims are not hoarded. The claim and the
reader loads run on the claims thread (``run.db_thread``); the batch handed to the sender is
plain data (``delivery.snapshots``). A batch claimed ahead was read up to a batch's sending
time ago: when it is handed out, its readers' status is read again (``inactive_among``, before
the next claim starts), so that a reader who unsubscribed meanwhile is skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from digest.compose import ArticleView, EditionView, ReaderView
from digest.config.settings import Settings
from digest.delivery.claims import Claim, claim
from digest.delivery.snapshots import (
    edition_view_for,
    inactive_among,
    load_candidates,
    readers_for,
)
from digest.run.db_thread import DbThread

__all__ = ["ClaimFeeder", "ClaimedBatch", "EditionKey"]


Edition = tuple[EditionView, list[ArticleView]]
EditionKey = tuple[int, dt.datetime | None]  # Claim.edition_key


@dataclass
class ClaimedBatch:
    """Claimed deliveries with what composing them needs (plain data, read-only once made)."""

    claims: list[Claim]
    readers: dict[int, ReaderView]
    inactive: set[int]
    editions: dict[EditionKey, Edition] = field(default_factory=dict)


class ClaimFeeder:
    """Claims batches on the claims thread, one batch ahead of the sending."""

    def __init__(self, db: DbThread, settings: Settings, worker: str, batch: int,
                 retry_deferred_before: dt.datetime | None,
                 guard: Callable[[], None] | None = None) -> None:
        self.settings, self.worker, self.batch = settings, worker, batch
        self.retry_before = retry_deferred_before
        self.lookback = dt.timedelta(days=settings.max_lookback_days)
        self.db = db
        self.guard = guard  # raises when this sender may no longer claim (its lock is gone)
        self.exhausted = False
        self._next: cf.Future[ClaimedBatch | None] | None = None
        self._handing: ClaimedBatch | None = None
        self._cursor = 0  # the highest id claimed: pending rows below are all taken
        self._editions: dict[EditionKey, Edition] = {}  # on the claims thread only

    def _claim(self, conn: Connection) -> ClaimedBatch | None:
        """On the claims thread: the claim, then the batch's readers, in one transaction."""
        if self.guard is not None:
            self.guard()
        claims = claim(conn, self.worker, self.batch, claim_timeout=self.settings.claim_timeout,
                       retry_deferred_before=self.retry_before, after_id=self._cursor)
        if not claims:
            return None
        self._cursor = max(self._cursor, claims[-1].delivery_id)
        editions = {key: self._edition(conn, *key) for key in {c.edition_key for c in claims}}
        since = min(view.cutoff for view, _ in editions.values()) - self.lookback
        readers, inactive = readers_for(conn, [c.subscriber_id for c in claims], since)
        return ClaimedBatch(claims, readers, inactive, editions)

    def _edition(self, conn: Connection, edition_id: int, cutoff: dt.datetime | None
                 ) -> Edition:
        """The edition as these deliveries see it: with their own cutoff (an hourly run's
        instant), or the edition's; its candidate articles loaded once per run."""
        found = self._editions.get((edition_id, cutoff))
        if found is None:
            view = edition_view_for(conn, edition_id, self.settings.timezone, cutoff)
            found = self._editions[edition_id, cutoff] = (view, load_candidates(conn, view,
                                                                                self.lookback))
        return found

    def _ahead(self) -> None:
        if self._next is None and not self.exhausted:
            self._next = self.db.submit(self._claim)

    async def next(self) -> ClaimedBatch | None:
        """The next batch (None: nothing left), and the claim of the one after it begun."""
        self._ahead()
        if self._next is None:
            return None
        # Left in self._next until its result is in hand: if this await is cancelled,
        # close() still finds the batch and hands it back for release.
        got = await asyncio.wrap_future(self._next)
        self._next = None
        if got is None:
            self.exhausted = True
            return None
        # Queued on the claims thread before the next claim, so it is answered at once. Kept
        # in self._handing meanwhile: if this await fails, close() hands the batch back.
        self._handing = got
        fresh: cf.Future[set[int]] = self.db.submit(
            lambda conn: inactive_among(conn, list(got.readers)))
        self._ahead()
        gone: set[int] = await asyncio.wrap_future(fresh)
        got.inactive |= gone
        self._handing = None
        return got

    def inactive_among(self, subscriber_ids: list[int]) -> cf.Future[set[int]]:
        """Which of these readers may no longer be mailed (on the claims thread)."""
        return self.db.submit(lambda conn: inactive_among(conn, subscriber_ids))

    def close(self) -> list[ClaimedBatch]:
        """Stop; the batches claimed and never handed out (to be released)."""
        leftover, self.exhausted = [], True
        if self._handing is not None:
            leftover.append(self._handing)
            self._handing = None
        try:
            if self._next is not None and not self._next.cancelled():
                ahead = self._next.result()  # waits for a claim under way
                if ahead is not None:
                    leftover.append(ahead)
        finally:
            self._next = None
        return leftover
