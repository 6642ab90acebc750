"""Send pre-serialized messages over a pool of reused SMTP connections.

``SmtpPool.run`` starts ``DIGEST_SEND_CONCURRENCY`` workers; each owns one connection (opened by
``smtp.open_connection``, so TLS and the AUTH rules live in one place), pulls ``Job``s from the
caller one at a time, waits its turn at the shared rate limiter and reports a ``Reply`` per
job. A worker reconnects after a drop, a timeout or a 421, and after
``DIGEST_SMTP_MAX_PER_CONNECTION`` messages; after a 503 (the session lost its place, not the
reader's fault) it tries the message once more on a fresh connection. Every reply is
classified into an ``Outcome`` (``transport.replies``).

With AUTH, the first connection logs in alone: the others wait until the credentials have
worked once. A wrong password thus costs one failed login per run, not one per connection
(fail2ban and providers ban after a few), and stops the run (``ConfigError``, exit 2).

This module knows nothing of the database: the pipeline turns replies into ledger rows.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from digest.config.errors import ConfigError, SendAborted, SmtpConfigError
from digest.config.settings import Settings
from digest.transport.connection import close_connection, open_connection
from digest.transport.rate import RateLimiter
from digest.transport.replies import (
    Outcome,
    Reply,
    ReplyCode,
    Stage,
    abort_error,
    classified_reply,
    is_session_fault,
)

__all__ = ["Job", "JobSource", "SmtpPool"]

Connect = Callable[[Settings], Awaitable[aiosmtplib.SMTP]]
# A job at once, None when there is no more work, or an awaitable of either (the caller
# waits for its database, say: the other workers keep sending meanwhile).
JobSource = Callable[[], "Job | Awaitable[Job | None] | None"]


@dataclass(frozen=True, slots=True)
class Job:
    """One message to send. ``key`` is opaque here (the pipeline uses the delivery id)."""

    key: int
    sender: str
    recipient: str
    data: bytes


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
                  still_wanted: Callable[[Job], bool] | None = None) -> None:
        """Send jobs until ``next_job`` returns None; raise if the run must stop.

        ``still_wanted`` is asked right before a job goes out (after any rate-limit wait); a
        job it turns down is reported as ``Outcome.WITHDRAWN``, unsent.

        Workers pull: ``next_job`` is called when a connection is free, so the caller prepares
        a message just in time and never holds more than it needs; it may hand back an
        awaitable when the message is not ready yet. A job a
        worker took but never attempted (after an abort) gets no result: the caller still holds
        its claim and gives it back.
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

    async def _open(self) -> aiosmtplib.SMTP:
        """Connect (and log in); until a login has worked once, one connection at a time."""
        if self.error is not None:
            raise _Stopped
        if not self._login_proven:
            async with self._login_gate:
                if self.error is not None:  # the first login failed: no second attempt
                    raise _Stopped
                if not self._login_proven:
                    client = await self._open_retrying()
                    self._login_proven = True
                    return client
        return await self._open_retrying()

    async def _open_retrying(self) -> aiosmtplib.SMTP:
        """Connect, retrying briefly: a refused or dropped connect is often transient (a
        refused login is not: ``open_connection`` raises ConfigError, never retried)."""
        last: Exception | None = None
        for delay in (*self._retries, None):
            try:
                return await self._connect(self.settings)
            except (aiosmtplib.SMTPException, OSError) as exc:
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

    async def _reopen(self) -> aiosmtplib.SMTP | None:
        """A fresh connection, or None when the run must stop (the error is recorded)."""
        try:
            return await self._open()
        except _Stopped:
            return None
        except (SendAborted, ConfigError) as exc:
            self.stop(exc)
            return None

    async def _worker(self, next_job: JobSource, on_result: Callable[[Job, Reply], None],
                      still_wanted: Callable[[Job], bool] | None) -> None:
        client: aiosmtplib.SMTP | None = None
        used = 0
        try:
            while self.error is None:
                try:
                    job = next_job()
                    if job is not None and not isinstance(job, Job):
                        job = await job
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # e.g. the database went away: stop
                    self.stop(exc)
                    raise
                if job is None:
                    return
                if client is None or not client.is_connected:
                    client, used = await self._reopen(), 0
                    if client is None:
                        return  # the run's error is recorded; this job was not attempted
                delay = self.limiter.take()  # a plain call: no coroutine per message
                if delay > 0:
                    await asyncio.sleep(delay)
                if still_wanted is not None and not still_wanted(job):
                    self._report(on_result, job,
                                 Reply(Outcome.WITHDRAWN, None, "withdrawn before sending"))
                    continue
                reply = await self._attempt(client, job)
                used += 1
                if is_session_fault(reply.code):  # 503: once more, in a fresh session
                    self._on_drop(client, reply)
                    client, used = await self._reopen(), 0
                    if client is not None:
                        reply = await self._attempt(client, job)
                        used += 1
                self._report(on_result, job, reply)
                if reply.outcome is Outcome.ABORT:
                    self.stop(abort_error(reply))
                    return
                # (After a 503 whose reconnect failed there is no client: the run stops.)
                if client is not None and (reply.code is None or is_session_fault(reply.code)
                                           or reply.code == ReplyCode.SERVICE_NOT_AVAILABLE):
                    self._on_drop(client, reply)
                    client = None
                elif reply.code == ReplyCode.TEMPORARY_AUTH_FAILURE:
                    self.limiter.slow_down(self._pause)
                if client is not None and used >= self.settings.smtp_max_per_connection:
                    await close_connection(client)
                    client = None
        finally:
            if client is not None:
                await close_connection(client)

    def _report(self, on_result: Callable[[Job, Reply], None], job: Job, reply: Reply) -> None:
        try:
            on_result(job, reply)
        except BaseException as exc:  # e.g. the ledger cannot be written: stop
            self.stop(exc)
            raise

    def _on_drop(self, client: aiosmtplib.SMTP, reply: Reply) -> None:
        client.close()
        self.reconnects += 1
        if reply.code == ReplyCode.SERVICE_NOT_AVAILABLE:
            now = time.monotonic()
            self._recent_421 = [t for t in self._recent_421 if now - t < 60] + [now]
            if len(self._recent_421) >= 2:  # repeated 421: the provider is throttling us
                self.limiter.slow_down(self._pause)
                self._recent_421.clear()

    async def _attempt(self, client: aiosmtplib.SMTP, job: Job) -> Reply:
        try:
            _errors, text = await client.sendmail(job.sender, [job.recipient], job.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return classified_reply(refused.code, refused.message, Stage.RCPT)
        except aiosmtplib.SMTPSenderRefused as exc:
            return classified_reply(exc.code, exc.message, Stage.MAIL)
        except aiosmtplib.SMTPResponseException as exc:
            return classified_reply(exc.code, exc.message, Stage.DATA)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # A drop or a timeout: we cannot know whether the server kept the message.
            return Reply(Outcome.DEFERRED, None, f"connection lost: {exc or type(exc).__name__}")
        except ValueError as exc:  # an address aiosmtplib will not put on the wire
            return Reply(Outcome.FAILED, None, f"not sent: {exc}")
        return Reply(Outcome.SENT, ReplyCode.OK, text)


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
