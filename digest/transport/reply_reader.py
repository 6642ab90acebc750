"""The connection's protocol once a session takes it over: every SMTP reply, parsed in order.

``transport.pipeline`` moves the asyncio transport aiosmtplib opened to a ``ReplyReader``
(``transport.set_protocol``): it parses every reply the server sends -- several per read when
commands were pipelined -- into a queue, and ``reply()`` hands them out one at a time, with a
timeout per wait kept by one timer per connection.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["ReplyReader", "SessionLost"]

_MAX_PENDING = 64 * 1024  # bytes of reply text not yet a full line: a broken server


class SessionLost(Exception):
    """No usable reply: the connection dropped, timed out or spoke no SMTP."""


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
        end = buffer.rfind(b"\n")  # the whole lines in; the rest waits for the next read
        lines = bytes(buffer[:end]).split(b"\n") if end >= 0 else []
        del buffer[:end + 1]
        texts = self._texts
        for line in lines:
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
        # One timer per connection, not one per wait (asyncio.timeout, call_later): each wait
        # moves the deadline; the timer, when it fires, fails a wait that passed it or sets
        # itself for the deadline of the wait now under way.
        self._deadline, self._timeout = self._loop.time() + timeout, timeout
        # A read may hold no whole reply yet (half a line, the first lines of a multi-line
        # one): woken, wait again -- same deadline -- until a reply or the end is there.
        while not self._replies and self.lost is None:
            if self._timer is None or self._timer.when() > self._deadline:  # (a shorter one)
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = self._loop.call_at(self._deadline, self._watch)
            waiter = self._waiter = self._loop.create_future()
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
