"""The hot path of bulk SMTP: MAIL FROM, RCPT TO, DATA and the message on a connection that
aiosmtplib opened -- pipelined (RFC 2920) when the server offers PIPELINING, lock-step when not.

aiosmtplib does what it does well, once per connection: connect, EHLO, STARTTLS, AUTH
(``transport.connection``). Its ``sendmail`` pays a round trip per command and two regex passes
over every message, and its protocol parses one reply per command, so it cannot pipeline. Once
the connection is ready, ``SmtpSession.take_over`` therefore moves the connection's asyncio
transport to ``ReplyReader`` (``transport.set_protocol``): a small protocol that parses every
reply the server sends, several per read, in order. It relies only on aiosmtplib's public
``SMTP.transport``, ``ehlo()``, ``is_ehlo_or_helo_needed``, ``supports_extension`` (aiosmtplib
>=3,<6). The message comes in DATA form (``render.message``) and is written as it is.

One transaction, pipelined::

    write  [RSET,] MAIL FROM, RCPT TO, DATA                  one write
    read   their replies                                     together
    write  the message [+ the next MAIL FROM, RCPT TO, DATA] one write (RFC 2920 section 3.1)
    read   the message's reply [+ the next three]

Lock-step (no PIPELINING): each command waits for its reply. Either way the next message body
leaves only after the reply to the previous one was read and handed to the caller, who journals
it first: at most one message per connection is ever in flight.

A refused MAIL or RCPT of a pipelined group makes the server answer DATA with 503/554 (RFC 2920
section 3.1): the message is then not sent and the transaction is reset (RSET, in front of the
next group). A server that answers 354 anyway gets an empty end of data, which delivers nothing
(there is no recipient) and keeps the session in step. The first reply that failed decides, and
every reply goes through ``transport.replies.classify``.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Protocol

import aiosmtplib

from digest.transport.replies import Outcome, Reply, ReplyCode, Stage, classified_reply

__all__ = ["Envelope", "ReplyReader", "SessionLost", "SmtpSession", "envelope_commands"]

_MAX_PENDING = 64 * 1024  # bytes of reply text not yet a full line: a broken server


class Envelope(Protocol):
    """What a session sends: the envelope and the message in DATA form (``transport.pool.Job``)."""

    @property
    def sender(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def wire(self) -> bytes: ...


class SessionLost(Exception):
    """No usable reply: the connection dropped, timed out or spoke no SMTP."""


def _address(address: str) -> str:
    # What aiosmtplib refuses too: a control character would inject a command.
    if (not address.isascii() or not address.isprintable()
            or "<" in address or ">" in address or " " in address):
        raise ValueError(f"{address!r} cannot be put in an SMTP command")
    return address


@functools.lru_cache(maxsize=8)
def _mail_from(sender: str) -> bytes:
    # Without VERP every message has the same envelope sender: checked and encoded once.
    return f"MAIL FROM:<{_address(sender)}>\r\n".encode("ascii")


def envelope_commands(job: Envelope) -> tuple[bytes, bytes, bytes]:
    """MAIL FROM, RCPT TO and DATA for one message (ValueError for an unusable address)."""
    return (_mail_from(job.sender), f"RCPT TO:<{_address(job.recipient)}>\r\n".encode("ascii"),
            b"DATA\r\n")


class ReplyReader(asyncio.Protocol):
    """The connection's protocol from now on: every reply, parsed in order (multi-line ones
    joined with ``\\n``), waiting in a queue. Writes need no flow control: a session waits for
    replies after every write, so at most one message per connection is ever buffered."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []  # the first lines of a multi-line reply
        self._texts: dict[bytes, str] = {}  # reply texts as received -> decoded
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # see reply()
        self._deadline = self._timeout = 0.0
        self.lost: str | None = None  # why the connection is no longer usable
        self._loop = asyncio.get_running_loop()
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.rfind(b"\n")
        if end < 0:
            if len(buffer) > _MAX_PENDING:
                self._fail("a reply line too long")
            return
        complete = bytes(buffer[:end])
        del buffer[:end + 1]
        texts = self._texts
        for line in complete.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) < 3 or not line[:3].isdigit():
                self._fail(f"not an SMTP reply: {line[:80]!r}")
                return
            raw = line[4:]
            text = texts.get(raw)
            if text is None:  # most replies repeat word for word: decoded once
                # No NUL: a reply is stored in the ledger, and PostgreSQL text cannot hold one.
                text = raw.strip().replace(b"\0", b"").decode("utf-8", "replace")
                if len(texts) >= 256:
                    texts.clear()
                texts[raw] = text
            if line[3:4] == b"-":
                self._lines.append(text)
                continue
            if self._lines:
                text = "\n".join((*self._lines, text))
                self._lines = []
            self._replies.append((int(line[:3]), text))
        if len(buffer) > _MAX_PENDING:
            self._fail("a reply line too long")
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = f"connection lost: {exc}" if exc else "connection closed by the server"
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def _fail(self, why: str) -> None:
        self.lost = why
        self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self.lost is not None and self._timer is not None:
            self._timer.cancel()  # no further wait on this connection
            self._timer = None

    def _watch(self) -> None:
        """The timer: fail a wait that passed its deadline, else wait for the current one."""
        self._timer = None
        waiting = self._waiter is not None and not self._waiter.done()
        if not waiting or self.lost is not None:
            return  # the next wait arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._watch)
            return
        self._fail(f"no reply within {self._timeout:g} s")

    async def reply(self, timeout: float) -> tuple[int, str]:
        """The next reply; SessionLost when there is none (drop, timeout, garbage)."""
        if not self._replies and self.lost is None:
            # One timer per connection, not one per wait (asyncio.timeout, call_later): each
            # wait moves the deadline; the timer, when it fires, fails a wait that passed it
            # or sets itself for the deadline of the wait now under way.
            waiter = self._waiter = self._loop.create_future()
            self._deadline, self._timeout = self._loop.time() + timeout, timeout
            if self._timer is None or self._timer.when() > self._deadline:  # (a shorter one)
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = self._loop.call_at(self._deadline, self._watch)
            try:
                await waiter
            finally:
                self._waiter = None
        if self._replies:
            return self._replies.popleft()
        raise SessionLost(self.lost or "connection lost")

    def write(self, *pieces: bytes) -> None:
        if self.lost is not None or self.transport.is_closing():
            raise SessionLost(self.lost or "connection closed")
        self.transport.writelines(pieces)


class SmtpSession:
    """Transactions on one connection. ``start`` (pipelined: the envelope goes out now),
    ``envelope`` (its replies: a failed ``Reply``, or None when the server waits for the
    message), ``send_message`` (optionally with the next envelope), ``message_reply``."""

    def __init__(self, reader: ReplyReader, *, pipelining: bool, timeout: float) -> None:
        self.reader = reader
        self.pipelining = pipelining
        self.timeout = timeout
        self._reset = False  # a failed transaction is open: RSET before the next MAIL
        self._reset_sent = False  # the group on the wire starts with that RSET
        self._in_data = False  # between a 354 and the end of data: QUIT would be message text
        self._started: Envelope | None = None  # whose group is on the wire, replies unread

    @classmethod
    async def take_over(cls, client: aiosmtplib.SMTP, timeout: float) -> SmtpSession:
        """A session on ``client``'s connection (EHLO first if aiosmtplib did none)."""
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        transport = client.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            raise SessionLost("the connection closed before the first message")
        return cls(ReplyReader(transport), pipelining=client.supports_extension("pipelining"),
                   timeout=timeout)

    @property
    def usable(self) -> bool:
        return self.reader.lost is None and not self.reader.transport.is_closing()

    def start(self, job: Envelope) -> None:
        """Pipelined: write [RSET,] MAIL, RCPT and DATA now. Lock-step: nothing yet."""
        if self.pipelining and self._started is not job:
            commands = envelope_commands(job)
            self.reader.write(*((b"RSET\r\n", *commands) if self._reset else commands))
            self._reset_sent, self._reset = self._reset, False
            self._started = job

    async def envelope(self, job: Envelope) -> Reply | None:
        """Send (lock-step) or read (pipelined) the envelope: None when the server waits for
        the message, else the reply that refused this transaction."""
        try:
            if self.pipelining:
                self.start(job)
                self._started = None
                return await self._pipelined_replies()
            return await self._lock_step(job)
        except SessionLost as exc:
            return _lost(exc)

    async def _pipelined_replies(self) -> Reply | None:
        if self._reset_sent and (closing := await self._read(Stage.MAIL)) is not None:
            return closing  # 421 instead of the RSET's 250: the MAIL will not be answered
        failed = None
        for stage in (Stage.MAIL, Stage.RCPT):
            code, text = await self.reader.reply(self.timeout)
            if code == ReplyCode.SERVICE_NOT_AVAILABLE:
                return classified_reply(code, text, stage)  # the server closes: no more replies
            if failed is None and not 200 <= code < 300:
                failed = classified_reply(code, text, stage)
        return await self._data_reply(failed)

    async def _lock_step(self, job: Envelope) -> Reply | None:
        mail, rcpt, data = envelope_commands(job)
        if self._reset:
            self._reset = False
            self.reader.write(b"RSET\r\n")
            if (closing := await self._read(Stage.MAIL)) is not None:
                return closing
        for command, stage in ((mail, Stage.MAIL), (rcpt, Stage.RCPT)):
            self.reader.write(command)
            code, text = await self.reader.reply(self.timeout)
            if not 200 <= code < 300:
                self._reset = True
                return classified_reply(code, text, stage)
        self.reader.write(data)
        return await self._data_reply(None)

    async def _read(self, stage: Stage) -> Reply | None:
        """A reply that only matters when it says the server is closing (RSET's)."""
        code, text = await self.reader.reply(self.timeout)
        return classified_reply(code, text, stage) if code == ReplyCode.SERVICE_NOT_AVAILABLE \
            else None

    async def _data_reply(self, failed: Reply | None) -> Reply | None:
        code, text = await self.reader.reply(self.timeout)
        if code == ReplyCode.START_MAIL_INPUT:
            if failed is None:
                self._in_data = True
                return None
            # 354 although MAIL or RCPT failed: end the data at once; with no recipient
            # nothing is delivered. Its reply is read and dropped.
            self.reader.write(b".\r\n")
            await self.reader.reply(self.timeout)
        elif failed is None:
            failed = classified_reply(code, text, Stage.DATA)
        self._reset = True
        return failed

    def send_message(self, job: Envelope, then: Envelope | None = None) -> bool:
        """Write the message; with ``then`` (pipelined only) the next envelope in the same
        write. Whether ``then`` went out. A lost connection shows in ``message_reply``."""
        commands: tuple[bytes, ...] = ()
        if then is not None and self.pipelining:
            try:
                commands = envelope_commands(then)
            except ValueError:  # reported when ``then`` is started on its own
                commands = ()
        self._in_data = False
        try:
            self.reader.write(job.wire, *commands)
        except SessionLost:
            return False
        if commands:
            self._started, self._reset_sent = then, False
        return bool(commands)

    async def message_reply(self) -> Reply:
        """The server's verdict on the message just sent."""
        try:
            code, text = await self.reader.reply(self.timeout)
        except SessionLost as exc:
            return _lost(exc)
        return classified_reply(code, text, Stage.DATA)

    async def quit(self) -> None:
        """QUIT politely when the session is in step; otherwise just close."""
        if self.usable and not self._in_data and self._started is None:
            try:
                self.reader.write(b"QUIT\r\n")
                await self.reader.reply(min(self.timeout, 5.0))
            except SessionLost:
                pass
        self.close()

    def close(self) -> None:
        self.reader.transport.close()


def _lost(exc: SessionLost) -> Reply:
    # We cannot know whether the server kept the message: retried later (DESIGN.md).
    return Reply(Outcome.DEFERRED, None, str(exc))
