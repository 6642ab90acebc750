"""Send messages over a pool of reused SMTP connections, pipelined when the server allows.

``SmtpPool.run`` starts ``DIGEST_SEND_CONCURRENCY`` workers; each owns one connection (opened by
``connection.open_connection`` -- aiosmtplib: TLS and the AUTH rules live in one place -- then
driven by ``pipeline.SmtpSession``), pulls ``Job``s from the caller one at a time, waits its turn
at the shared rate limiter and reports a ``Reply`` per job. With PIPELINING a worker takes the
next job while the current message goes out, so that the message and the next envelope share a
write; the next *message* only leaves once the caller has had the previous reply (and journaled
it): one message per connection in flight, never more. A worker reconnects after a drop, a
timeout or a 421, and after ``DIGEST_SMTP_MAX_PER_CONNECTION`` messages; after a 503 (the
session lost its place, not the reader's fault) it tries the message once more on a fresh
connection. Every reply is classified into an ``Outcome`` (``transport.replies``).

With AUTH, the first connection logs in alone: the others wait until the credentials have
worked once. A wrong password thus costs one failed login per run, not one per connection
(fail2ban and providers ban after a few), and stops the run (``ConfigError``, exit 2).

This module knows nothing of the database: the pipeline turns replies into ledger rows.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aiosmtplib

from digest.config.errors import ConfigError, SendAborted, SmtpConfigError
from digest.config.settings import Settings
from digest.transport.connection import open_connection
from digest.transport.job_source import Job, JobPuller, JobSource
from digest.transport.pipeline import SessionLost, SmtpSession
from digest.transport.rate import RateLimiter
from digest.transport.replies import Outcome, Reply, ReplyCode, abort_error, is_session_fault

__all__ = ["Job", "JobSource", "SmtpPool"]

Connect = Callable[[Settings], Awaitable[aiosmtplib.SMTP]]
StillWanted = Callable[[Job], bool]


class SmtpPool:
    """``concurrency`` workers, each with its own reused connection."""

    def __init__(self, settings: Settings, *, connect: Connect = open_connection,
                 connect_retries: tuple[float, ...] = (0.2, 1.0), throttle_pause: float = 2.0,
                 concurrency: int | None = None) -> None:
        self.settings = settings
        self.concurrency = concurrency or settings.send_concurrency
        self.limiter = RateLimiter(settings.send_rate)
        self._connect = connect
        self._retries = connect_retries
        self._pause = throttle_pause
        self._recent_421: list[float] = []
        self.error: BaseException | None = None  # set when the run must stop
        self.reconnects = 0
        self._login_gate = asyncio.Lock()  # the first AUTH goes alone (see above)
        self._login_proven = not settings.smtp_username  # no AUTH: nothing to prove

    async def run(self, next_job: JobSource, on_result: Callable[[Job, Reply], None], *,
                  still_wanted: StillWanted | None = None) -> None:
        """Send jobs until ``next_job`` returns None; raise if the run must stop.

        ``still_wanted`` is asked right before a job's envelope goes out (after any rate-limit
        wait); a job it turns down is reported as ``Outcome.WITHDRAWN``, unsent.

        Workers pull: ``next_job`` is called when a connection is free, so the caller prepares
        a message just in time and never holds more than it needs; it may hand back an
        awaitable when the message is not ready yet. A job a worker took but never attempted
        (after an abort) gets no result: the caller still holds its claim and gives it back.
        """
        workers = [asyncio.create_task(self._worker(next_job, on_result, still_wanted))
                   for _ in range(self.concurrency)]
        outcomes = await asyncio.gather(*workers, return_exceptions=True)
        for outcome in outcomes:  # a bug or a database error in on_result: not swallowed
            if isinstance(outcome, BaseException) and self.error is None:
                self.error = outcome
        if self.error is not None:
            raise self.error

    def stop(self, error: BaseException) -> None:
        """End the run: workers finish the message in hand and take no more."""
        if self.error is None:
            self.error = error

    async def _open(self) -> SmtpSession:
        """Connect (and log in); until a login has worked once, one connection at a time."""
        if self.error is not None:
            raise _Stopped
        if not self._login_proven:
            async with self._login_gate:
                if self.error is not None:  # the first login failed: no second attempt
                    raise _Stopped
                if not self._login_proven:
                    session = await self._open_retrying()
                    self._login_proven = True
                    return session
        return await self._open_retrying()

    async def _open_retrying(self) -> SmtpSession:
        """Connect, retrying briefly: a refused or dropped connect is often transient (a
        refused login is not: ``open_connection`` raises ConfigError, never retried)."""
        last: Exception | None = None
        for delay in (*self._retries, None):
            try:
                client = await self._connect(self.settings)
                try:
                    return await SmtpSession.take_over(client, self.settings.smtp_timeout)
                except BaseException:
                    client.close()
                    raise
            except (aiosmtplib.SMTPException, OSError, SessionLost) as exc:
                untrusted = _certificate_error(exc)
                if untrusted is not None:
                    raise SmtpConfigError(
                        f"The SMTP server's certificate is not trusted: "
                        f"{untrusted.verify_message}",
                        "use the server's real host name in DIGEST_SMTP_HOST, or point "
                        "DIGEST_SMTP_CA_FILE at your private CA") from exc
                last = exc
            if delay is not None:
                await asyncio.sleep(delay)
        s = self.settings
        raise SendAborted(
            f"Cannot connect to the SMTP server {s.smtp_host}:{s.smtp_port}: {last}",
            "check DIGEST_SMTP_HOST, DIGEST_SMTP_PORT and DIGEST_SMTP_SECURITY and that the "
            "server is up; unsent deliveries stay pending or deferred for the next run")

    async def _worker(self, next_job: JobSource, on_result: Callable[[Job, Reply], None],
                      still_wanted: StillWanted | None) -> None:
        source = JobPuller(next_job, self)
        session: SmtpSession | None = None
        # Taken, not yet answered: the one being sent, and the next (whose envelope may be on
        # the wire already). After a 503 the message goes back to the front, once.
        hand: deque[Job] = deque()
        retried: int | None = None
        used = 0
        try:
            while self.error is None:
                if not hand:
                    got = await source.take()
                    if got is None:
                        return
                    await self._pace()
                    if self._wanted(still_wanted, got, on_result):
                        hand.append(got)
                    continue
                job = hand[0]
                if session is None or not session.usable:
                    session, used = await self._session(), 0
                    if session is None:
                        return  # reported as the run's error; this job was not attempted
                reply = await self._envelope(session, job)
                then = None
                if reply is None:  # the server waits for the message: send it, maybe with
                    if (session.pipelining and len(hand) == 1  # the next envelope
                            and used + 1 < self.settings.smtp_max_per_connection):
                        then = source.take_now()
                        if then is not None and not self._wanted(still_wanted, then, on_result):
                            then = None
                    delay = self.limiter.take() if then is not None else 0.0
                    session.send_message(job, then if delay <= 0 else None)
                    reply = await session.message_reply()
                    if delay > 0:
                        await asyncio.sleep(delay)
                hand.popleft()
                if then is not None:
                    hand.append(then)
                used += 1
                if is_session_fault(reply.code) and retried != job.key:
                    retried = job.key  # 503: once more, in a fresh session
                    self._on_drop(session, reply)
                    session = None
                    hand.appendleft(job)
                    continue
                self._report(on_result, job, reply)
                session = await self._after(session, reply, used)
                if session is None and reply.outcome is Outcome.ABORT:
                    return
        finally:
            source.close()
            if session is not None:
                await session.quit()

    def _wanted(self, still_wanted: StillWanted | None, job: Job,
                on_result: Callable[[Job, Reply], None]) -> bool:
        """Ask right before the envelope goes out; a job no longer wanted is reported."""
        if still_wanted is None or still_wanted(job):
            return True
        self._report(on_result, job, Reply(Outcome.WITHDRAWN, None, "withdrawn before sending"))
        return False

    async def _pace(self) -> None:
        delay = self.limiter.take()  # a plain call: no coroutine per message
        if delay > 0:
            await asyncio.sleep(delay)

    async def _session(self) -> SmtpSession | None:
        """A fresh connection, or None when the run must stop (the error is recorded)."""
        try:
            return await self._open()
        except _Stopped:
            return None
        except (SendAborted, ConfigError) as exc:
            self.stop(exc)
            return None

    async def _envelope(self, session: SmtpSession, job: Job) -> Reply | None:
        try:
            return await session.envelope(job)
        except ValueError as exc:  # an address we will not put on the wire
            return Reply(Outcome.FAILED, None, f"not sent: {exc}")

    def _report(self, on_result: Callable[[Job, Reply], None], job: Job, reply: Reply) -> None:
        try:
            on_result(job, reply)  # journaled there before the next message goes out
        except BaseException as exc:  # e.g. the ledger cannot be written: stop
            self.stop(exc)
            raise

    async def _after(self, session: SmtpSession, reply: Reply, used: int
                     ) -> SmtpSession | None:
        """What a reply means for the connection: the session to go on with, or None."""
        if reply.outcome is Outcome.ABORT:
            self.stop(abort_error(reply))
            await session.quit()
            return None
        if reply.code is None and reply.outcome is Outcome.FAILED:
            return session  # refused by us before anything was written: still in step
        if (reply.code is None or is_session_fault(reply.code)
                or reply.code == ReplyCode.SERVICE_NOT_AVAILABLE):
            self._on_drop(session, reply)
            return None
        if reply.code == ReplyCode.TEMPORARY_AUTH_FAILURE:
            self.limiter.slow_down(self._pause)
        if used >= self.settings.smtp_max_per_connection:
            await session.quit()
            return None
        return session

    def _on_drop(self, session: SmtpSession, reply: Reply) -> None:
        session.close()
        self.reconnects += 1
        if reply.code == ReplyCode.SERVICE_NOT_AVAILABLE:
            now = time.monotonic()
            self._recent_421 = [t for t in self._recent_421 if now - t < 60] + [now]
            if len(self._recent_421) >= 2:  # repeated 421: the provider is throttling us
                self.limiter.slow_down(self._pause)
                self._recent_421.clear()


class _Stopped(Exception):
    """Raised by ``_open`` when the run stopped meanwhile: no connection is attempted."""


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """aiosmtplib wraps TLS failures in its own errors: look down the chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
