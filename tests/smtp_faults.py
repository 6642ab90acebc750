"""A real SMTP server (aiosmtpd) that misbehaves on cue, for the sending tests.

Faults are scripted per recipient (``script["ana@x.ro"] = ["451 4.3.0 try later"]``: the first
attempt gets that reply at RCPT, later attempts are accepted) or per message count (``drop_at``:
the N-th DATA overall is answered 421 and the connection closed; ``cut_at``: the N-th DATA is
received and the connection cut without a reply). ``slow`` delays the DATA reply for a recipient's
first attempt past the client's timeout. Every accepted message is kept per recipient, so tests
can count duplicates. The handler also records every AUTH attempt (``auth_attempts``), every
EHLO name (``ehlo_names``) and when each RCPT arrived (``rcpt_at``); ``fault_server`` can cap
the message size (``size_limit``: aiosmtpd's own 552 reply). ``pipelining`` (default on) offers
PIPELINING in the EHLO reply; aiosmtpd reads commands in order either way, so it answers a
pipelined group like a real server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import free_port


@dataclass
class FaultHandler:
    script: dict[str, list[str]] = field(default_factory=dict)
    data_script: dict[str, list[str]] = field(default_factory=dict)
    drop_at: set[int] = field(default_factory=set)
    cut_at: set[int] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)
    delay: float = 0.0  # every DATA reply waits this long (a slow but healthy server)
    accepted: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    accepted_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    envelope_from: list[str] = field(default_factory=list)
    data_count: int = 0
    # Set when the first DATA arrives; while ``hold`` is given and not set, DATA replies wait:
    # a test can keep a sender mid-run for as long as it needs (no sleeping on guesses).
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None
    auth_attempts: list[tuple[str, bool]] = field(default_factory=list)  # (mechanism, ok)
    ehlo_names: list[str] = field(default_factory=list)
    rcpt_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    mail_at: dict[int, str] = field(default_factory=dict)  # the N-th MAIL overall -> reply
    # Called (in the server's thread) with the number of messages accepted so far: lets a
    # test break something else -- the database, say -- in the middle of a send.
    on_accept: Callable[[int], None] | None = None
    mail_count: int = 0
    pipelining: bool = True

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        self.mail_count += 1
        if self.mail_count in self.mail_at:
            return self.mail_at[self.mail_count]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.ehlo_names.append(hostname)
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self.rcpt_at[address].append(time.time())
        replies = self.script.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_count += 1
        number = self.data_count
        self.arrived.set()
        if self.hold is not None:
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
        rcpt = envelope.rcpt_tos[0]
        if number in self.cut_at:
            server.transport.close()  # received, never answered: the client cannot know
            return "250 2.0.0 never seen"
        if number in self.drop_at:
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return "421 4.3.2 Service shutting down, closing connection"
        if rcpt in self.slow:
            await asyncio.sleep(self.slow.pop(rcpt))
            return "250 2.0.0 too late"
        replies = self.data_script.get(rcpt)
        if replies:
            return replies.pop(0)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.accepted[rcpt].append(bytes(envelope.original_content or envelope.content))
        self.accepted_at[rcpt].append(time.time())  # wall clock, comparable to the ledger's
        self.envelope_from.append(envelope.mail_from)
        if self.on_accept is not None:
            self.on_accept(sum(len(copies) for copies in self.accepted.values()))
        return "250 2.0.0 OK queued"

    def message(self, rcpt: str, index: int = 0) -> EmailMessage:
        parsed = email.message_from_bytes(self.accepted[rcpt][index],
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _authenticator(handler: FaultHandler, username: str, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = (getattr(auth_data, "login", b"") == username.encode()
              and getattr(auth_data, "password", b"") == password.encode())
        handler.auth_attempts.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)
    return check


@contextmanager
def fault_server(handler: FaultHandler | None = None, *, tls: ssl.SSLContext | None = None,
                 starttls: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None,
                 size_limit: int | None = None, pipelining: bool | None = None,
                 ) -> Iterator[tuple[FaultHandler, int]]:
    """Run ``handler`` on 127.0.0.1; yields (handler, port). ``pipelining`` overrides the
    handler's."""
    handler = handler or FaultHandler()
    if pipelining is not None:
        handler.pipelining = pipelining
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": free_port(),
                              "decode_data": False, "data_size_limit": size_limit}
    if starttls is not None:
        kwargs["tls_context"] = starttls
        kwargs["require_starttls"] = True
    if auth is not None:
        kwargs["authenticator"] = _authenticator(handler, *auth)
        kwargs["auth_required"] = True
        # aiosmtpd only counts STARTTLS as TLS; an implicit-TLS connection is encrypted anyway.
        kwargs["auth_require_tls"] = tls is None
    controller = Controller(handler, ssl_context=tls, **kwargs)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


__all__ = ["FaultHandler", "fault_server"]
