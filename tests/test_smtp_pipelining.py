"""RFC 2920 on the wire, against a raw asyncio server that checks how the client writes: with
PIPELINING, MAIL/RCPT/DATA arrive as one group and each message arrives together with the
next envelope; a refused RCPT means no message after the DATA refusal (and an RSET); a server
that answers 354 despite the refusal gets an empty end of data. Without PIPELINING each
command waits for its reply."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import pytest

from digest.config.settings import Settings
from digest.render.mime import to_data_form
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply
from tests.conftest import free_port

BODY = b"Subject: t\r\n\r\n.leading dot\r\nhello\r\n"


@dataclass
class Strict:
    """Replies only once a whole group is in: a lock-step client would hang on MAIL when
    PIPELINING is offered. Logs every command and the bodies; ``refuse`` answers RCPT 550."""

    pipelining: bool = True
    refuse: set[str] = field(default_factory=set)
    data_despite_refusal: bool = False
    log: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 strict ESMTP\r\n")
        pending: list[bytes] = []
        rcpt_ok = False
        while line := await reader.readline():
            command = line.decode().strip()
            self.log.append(command.split(":")[0].split(" ")[0])
            verb = command[:4].upper()
            if verb == "EHLO":
                writer.write(b"250-strict\r\n" + (b"250-PIPELINING\r\n" if self.pipelining
                                                  else b"") + b"250 8BITMIME\r\n")
            elif verb == "MAIL":
                pending.append(b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                rcpt_ok = command.split("<")[1].rstrip(">") not in self.refuse
                pending.append(b"250 2.1.5 ok\r\n" if rcpt_ok else b"550 5.1.1 no such user\r\n")
            elif verb == "RSET":
                pending.append(b"250 2.0.0 reset\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            elif verb == "DATA":
                if not rcpt_ok and not self.data_despite_refusal:
                    pending.append(b"554 5.5.1 no valid recipients\r\n")
                    writer.write(b"".join(pending))
                    pending = []
                    continue
                writer.write(b"".join(pending) + b"354 go ahead\r\n")
                pending = []
                body = b""
                while (got := await reader.readline()) and got != b".\r\n":
                    body += got
                self.bodies.append(body + got)
                pending.append(b"250 2.0.0 queued\r\n" if rcpt_ok else b"554 5.5.1 no rcpt\r\n")
                more = self.pipelining and await _more_follows(reader)
                self.log.append("BODY+" if more else "BODY")  # +: the next envelope with it
                if not more:
                    writer.write(b"".join(pending))
                    pending = []
            if not self.pipelining and pending:
                writer.write(b"".join(pending))
                pending = []
        writer.close()


async def _more_follows(reader: asyncio.StreamReader) -> bool:
    """Whether the next envelope came in the same write as the message."""
    await asyncio.sleep(0.01)
    return len(reader._buffer) > 0  # type: ignore[attr-defined]  # what arrived already


async def _send(settings: Settings, server: Strict, recipients: list[str]
                ) -> dict[str, Reply]:
    port = free_port()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", port)
    jobs = iter([Job(i, "stiri@example.ro", r, to_data_form(BODY))
                 for i, r in enumerate(recipients)])
    results: dict[str, Reply] = {}
    s = replace(settings, smtp_port=port, send_concurrency=1, smtp_timeout=2.0)
    async with listener:
        await SmtpPool(s, connect_retries=()).run(
            lambda: next(jobs, None), lambda job, reply: results.__setitem__(job.recipient, reply))
    return results


async def test_pipelined_groups_and_the_next_envelope_with_the_message(settings: Settings
                                                                       ) -> None:
    server = Strict()
    results = await _send(settings, server, ["a@example.ro", "b@example.ro", "c@example.ro"])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    # The dot-stuffed body, exactly once each; the strict server would have hung a lock-step
    # client (it answers nothing before the whole group is in).
    assert server.bodies == [b"Subject: t\r\n\r\n..leading dot\r\nhello\r\n.\r\n"] * 3
    assert server.log[1:] == ["MAIL", "RCPT", "DATA", "BODY+"] * 2 + ["MAIL", "RCPT", "DATA",
                                                                      "BODY", "QUIT"]


async def test_a_refused_rcpt_sends_no_message_and_resets(settings: Settings) -> None:
    server = Strict(refuse={"gone@example.ro"})
    results = await _send(settings, server, ["gone@example.ro", "ok@example.ro"])
    assert results["gone@example.ro"].outcome is Outcome.FAILED_ADDRESS
    assert results["gone@example.ro"].line == "550 5.1.1 no such user"
    assert results["ok@example.ro"].outcome is Outcome.SENT
    assert len(server.bodies) == 1  # the refused reader's message never left
    assert server.log[1:] == ["MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "BODY",
                              "QUIT"]


async def test_354_despite_a_refused_rcpt_gets_an_empty_end_of_data(settings: Settings) -> None:
    server = Strict(refuse={"gone@example.ro"}, data_despite_refusal=True)
    results = await _send(settings, server, ["gone@example.ro", "ok@example.ro"])
    assert results["gone@example.ro"].outcome is Outcome.FAILED_ADDRESS
    assert results["ok@example.ro"].outcome is Outcome.SENT
    assert server.bodies[0] == b".\r\n"  # nothing but the end of data
    assert server.bodies[1].endswith(b"hello\r\n.\r\n")


@pytest.mark.parametrize("refuse", [set(), {"b@example.ro"}])
async def test_without_pipelining_each_command_waits(settings: Settings,
                                                     refuse: set[str]) -> None:
    server = Strict(pipelining=False, refuse=refuse)
    results = await _send(settings, server, ["a@example.ro", "b@example.ro", "c@example.ro"])
    assert [r.outcome for r in results.values()] == [
        Outcome.FAILED_ADDRESS if r in refuse else Outcome.SENT
        for r in ["a@example.ro", "b@example.ro", "c@example.ro"]]
    expected = ["MAIL", "RCPT", "DATA", "BODY", "MAIL", "RCPT"]
    expected += ["RSET"] if refuse else ["DATA", "BODY"]
    assert server.log[1:] == [*expected, "MAIL", "RCPT", "DATA", "BODY", "QUIT"]


@dataclass
class Fragmented(Strict):
    """Writes each reply in two pieces 20 ms apart (half a line, then the rest), and the
    message's verdict as a multi-line reply whose last line comes later."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        real = writer.write
        loop = asyncio.get_running_loop()

        def write(data: bytes) -> None:
            data = data.replace(b"250 2.0.0 queued\r\n", b"250-2.0.0 queued\r\n250 2.0.0 as 1\r\n")
            cut = data.index(b"\n") + 1 if data.count(b"\n") > 1 else len(data) // 2
            real(data[:cut])
            loop.call_later(0.02, real, data[cut:])  # the rest in a later read

        writer.write = write  # type: ignore[method-assign]
        await super().serve(reader, writer)


@pytest.mark.parametrize("pipelining", [True, False])
async def test_replies_cut_across_reads_are_waited_for(settings: Settings,
                                                       pipelining: bool) -> None:
    """A read may end mid-line, or after the first lines of a multi-line reply: the session
    waits for the rest instead of taking the connection as lost."""
    server = Fragmented(pipelining=pipelining)
    results = await _send(settings, server, ["a@example.ro", "b@example.ro"])
    assert [(r.outcome, r.code, r.text) for r in results.values()] == [
        (Outcome.SENT, 250, "2.0.0 queued\n2.0.0 as 1")] * 2
    assert len(server.bodies) == 2
