"""The hot path of bulk SMTP: MAIL FROM, RCPT TO, DATA and the message on a connection that
aiosmtplib opened -- pipelined (RFC 2920) when the server offers PIPELINING, lock-step when not.

aiosmtplib does what it does well, once per connection: connect, EHLO, STARTTLS, AUTH
(``transport.connection``). Its ``sendmail`` pays a round trip per command and two regex passes
over every message, and its protocol parses one reply per command, so it cannot pipeline. Once
the connection is ready, ``SmtpSession.take_over`` therefore moves the connection's asyncio
transport to ``ReplyReader`` (``transport.reply_reader``): a small protocol that parses every
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
from typing import Protocol

import aiosmtplib

from digest.transport.replies import Outcome, Reply, ReplyCode, Stage, classified_reply
from digest.transport.reply_reader import ReplyReader, SessionLost

__all__ = ["Envelope", "ReplyReader", "SessionLost", "SmtpSession", "envelope_commands"]


class Envelope(Protocol):
    """What a session sends: the envelope and the message in DATA form (``transport.pool.Job``)."""

    @property
    def sender(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def wire(self) -> bytes: ...


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
