"""A pool worker's view of the caller's job source: wait for a job, or take one only if at hand.

The pipelined path takes the next job while the current message goes out (so that the message
and the next envelope share a write) -- but only a job that is ready now: an awaitable the
source hands back is kept for the next ``take``, never awaited mid-message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Job", "JobPuller", "JobSource"]


@dataclass(frozen=True, slots=True)
class Job:
    """One message to send. ``key`` is opaque here (the pipeline uses the delivery id);
    ``wire`` is the message in SMTP DATA form: CRLF, dot-stuffed, ending with ``.\r\n``
    (``render.mime.to_data_form`` makes it from any message)."""

    key: int
    sender: str
    recipient: str
    wire: bytes


# A job at once, None when there is no more work, or an awaitable of either (the caller
# waits for its database, say: the other workers keep sending meanwhile).
JobSource = Callable[[], "Job | Awaitable[Job | None] | None"]


class _Stoppable(Protocol):
    error: BaseException | None

    def stop(self, error: BaseException) -> None: ...


class JobPuller:
    """A worker's view of the job source: ``take`` waits for the next job, ``take_now`` only
    returns one that is at hand (an awaitable it got is kept for the next ``take``)."""

    def __init__(self, next_job: JobSource, pool: _Stoppable) -> None:
        self._next_job = next_job
        self._pool = pool
        self._waiting: Awaitable[Job | None] | None = None
        self._done = False

    def _call(self) -> Job | Awaitable[Job | None] | None:
        try:
            return self._next_job()
        except BaseException as exc:  # e.g. the database went away: stop
            self._pool.stop(exc)
            raise

    async def take(self) -> Job | None:
        if self._done:
            return None
        got, self._waiting = self._waiting or self._call(), None
        if got is not None and not isinstance(got, Job):
            try:
                got = await got
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._pool.stop(exc)
                raise
        self._done = got is None
        return got

    def take_now(self) -> Job | None:
        if self._done or self._waiting is not None or self._pool.error is not None:
            return None
        got = self._call()
        if got is None:
            self._done = True
        elif not isinstance(got, Job):
            self._waiting = got
            return None
        return got

    def close(self) -> None:
        """An awaitable taken and never awaited: closed, so that it does not warn."""
        if self._waiting is not None and asyncio.iscoroutine(self._waiting):
            self._waiting.close()
        self._waiting = None
