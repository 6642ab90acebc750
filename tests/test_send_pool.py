"""The SMTP pool against real aiosmtpd servers, healthy and faulty: reply classification,
reconnects, the per-connection cap, the rate limit and the stop on policy errors -- each with
the server offering PIPELINING (the pipelined path) and not (lock-step)."""

from __future__ import annotations

import time
from dataclasses import replace

import aiosmtplib
import pytest

from digest.config.errors import SendAborted
from digest.config.settings import Settings
from digest.render.mime import to_data_form
from digest.transport.connection import open_connection
from digest.transport.pool import Job, SmtpPool
from digest.transport.replies import Outcome, Reply, Stage, classify, enhanced_status
from tests.conftest import free_port
from tests.smtp_faults import FaultHandler, fault_server

MESSAGE = (b"From: a@example.ro\r\nTo: b@example.ro\r\nSubject: test\r\n"
           b"Message-ID: <1@example.ro>\r\n\r\nBun\xc4\x83 ziua\r\n.start of a dotted line\r\n")


@pytest.mark.parametrize(("code", "text", "stage", "expected"), [
    (250, "2.0.0 OK", Stage.DATA, Outcome.SENT),
    (421, "4.3.2 closing", Stage.DATA, Outcome.DEFERRED),
    (450, "4.2.1 mailbox busy", Stage.RCPT, Outcome.DEFERRED),
    (451, "4.3.0 local error", Stage.RCPT, Outcome.DEFERRED),
    (452, "4.5.3 too many recipients", Stage.RCPT, Outcome.DEFERRED),
    (454, "4.7.0 throttled", Stage.RCPT, Outcome.DEFERRED),
    (550, "5.1.1 user unknown", Stage.RCPT, Outcome.FAILED_ADDRESS),
    (551, "5.1.6 user moved", Stage.RCPT, Outcome.FAILED_ADDRESS),
    (553, "5.1.3 bad address syntax", Stage.RCPT, Outcome.FAILED_ADDRESS),
    (550, "5.1.8 bad sender domain", Stage.RCPT, Outcome.FAILED),
    (554, "5.7.1 relay denied", Stage.RCPT, Outcome.ABORT),
    (550, "5.7.1 spam policy", Stage.DATA, Outcome.ABORT),
    (553, "sender not allowed", Stage.MAIL, Outcome.ABORT),
    (552, "5.3.4 message too big", Stage.DATA, Outcome.FAILED),  # this message, at once
    (552, "5.3.4 Message size exceeds fixed limit", Stage.MAIL, Outcome.FAILED),  # SIZE=
    (552, "Error: Too much mail data", Stage.DATA, Outcome.FAILED),  # aiosmtpd, no 5.x.x
    (554, "5.3.4 Message too big for system", Stage.DATA, Outcome.FAILED),
    (552, "Requested mail action aborted: exceeded storage allocation", Stage.RCPT,
     Outcome.DEFERRED),  # mailbox full, said in words
    (503, "5.5.1 Error: need MAIL command", Stage.RCPT, Outcome.DEFERRED),  # the session's
    (503, "5.5.1 Error: nested MAIL command", Stage.MAIL, Outcome.DEFERRED),
    (503, "Bad sequence of commands", Stage.DATA, Outcome.DEFERRED),
    (550, "5.2.2 mailbox full", Stage.RCPT, Outcome.DEFERRED),
    (550, "no such user", Stage.RCPT, Outcome.FAILED),
    (554, "5.6.0 bad content", Stage.DATA, Outcome.FAILED),
])
def test_classify(code: int, text: str, stage: Stage, expected: Outcome) -> None:
    assert classify(code, text, stage) is expected


def test_enhanced_status() -> None:
    assert enhanced_status("5.1.1 <x@y.ro>: Recipient address rejected") == (5, 1, 1)
    assert enhanced_status("Requested action aborted") is None


class _Jobs:
    """A job source over a list; ``left`` is what no worker took."""

    def __init__(self, addresses: list[str]) -> None:
        self.left = [Job(i, "stiri@example.ro", a, to_data_form(MESSAGE))
                     for i, a in enumerate(addresses)]

    def __call__(self) -> Job | None:
        return self.left.pop(0) if self.left else None


async def _run(settings: Settings, addresses: list[str], **kwargs: object
               ) -> tuple[dict[str, Reply], SmtpPool]:
    pool = SmtpPool(settings, connect_retries=(0.05,), throttle_pause=0.05, **kwargs)  # type: ignore[arg-type]
    results: dict[str, Reply] = {}
    await pool.run(_Jobs(addresses), lambda job, reply: results.__setitem__(job.recipient, reply))
    return results, pool


def _at(settings: Settings, port: int, **changes: object) -> Settings:
    return replace(settings, smtp_host="127.0.0.1", smtp_port=port, **changes)  # type: ignore[arg-type]


async def test_faults_are_classified_per_recipient(settings: Settings, pipelining: bool) -> None:
    handler = FaultHandler(script={
        "gone@example.ro": ["550 5.1.1 <gone@example.ro>: user unknown"],
        "busy@example.ro": ["451 4.3.0 try again later"],
        "full@example.ro": ["552 5.2.2 mailbox full"],
        "throttle@example.ro": ["454 4.7.0 slow down please"],
    }, data_script={"junk@example.ro": ["554 5.6.0 content rejected"]})
    addresses = ["ok1@example.ro", "gone@example.ro", "busy@example.ro", "full@example.ro",
                 "throttle@example.ro", "junk@example.ro", "ok2@example.ro"]
    with fault_server(handler, pipelining=pipelining) as (_, port):
        results, pool = await _run(_at(settings, port, send_concurrency=2), addresses)
    assert {a: r.outcome for a, r in results.items()} == {
        "ok1@example.ro": Outcome.SENT, "ok2@example.ro": Outcome.SENT,
        "gone@example.ro": Outcome.FAILED_ADDRESS, "busy@example.ro": Outcome.DEFERRED,
        "full@example.ro": Outcome.DEFERRED, "throttle@example.ro": Outcome.DEFERRED,
        "junk@example.ro": Outcome.FAILED,
    }
    assert results["gone@example.ro"].line == "550 5.1.1 <gone@example.ro>: user unknown"
    assert results["ok1@example.ro"].line == "250 2.0.0 OK queued"
    assert sorted(handler.accepted) == ["ok1@example.ro", "ok2@example.ro"]
    # The dot-stuffed line arrived intact, the bytes unchanged.
    assert handler.accepted["ok1@example.ro"][0].rstrip(b"\r\n") == MESSAGE.rstrip(b"\r\n")
    assert pool.limiter.rate > 0  # 454 slowed the (uncapped) pool down


async def test_421_and_cut_connections_defer_and_reconnect(settings: Settings,
                                                           pipelining: bool) -> None:
    handler = FaultHandler(drop_at={3}, cut_at={6}, pipelining=pipelining)
    addresses = [f"r{i}@example.ro" for i in range(10)]
    with fault_server(handler) as (_, port):
        results, pool = await _run(_at(settings, port, send_concurrency=1), addresses)
    deferred = sorted(a for a, r in results.items() if r.outcome is Outcome.DEFERRED)
    assert deferred == ["r2@example.ro", "r5@example.ro"]
    assert results["r2@example.ro"].code == 421
    assert results["r5@example.ro"].code is None  # no reply at all
    assert len(handler.accepted) == 8 and pool.reconnects == 2


async def test_slow_reply_times_out_and_is_deferred(settings: Settings, pipelining: bool) -> None:
    handler = FaultHandler(slow={"slow@example.ro": 1.5}, pipelining=pipelining)
    with fault_server(handler) as (_, port):
        results, _pool = await _run(_at(settings, port, smtp_timeout=0.5, send_concurrency=1),
                                    ["slow@example.ro", "next@example.ro"])
    assert results["slow@example.ro"].outcome is Outcome.DEFERRED
    assert results["next@example.ro"].outcome is Outcome.SENT


async def test_policy_refusal_stops_the_run(settings: Settings, pipelining: bool) -> None:
    handler = FaultHandler(script={"r3@example.ro": ["554 5.7.1 Relay access denied"]},
                           pipelining=pipelining)
    addresses = [f"r{i}@example.ro" for i in range(20)]
    with fault_server(handler) as (_, port):
        pool = SmtpPool(_at(settings, port, send_concurrency=1))
        jobs = _Jobs(addresses)
        results: list[Reply] = []
        with pytest.raises(SendAborted, match=r"5\.7\.1") as info:
            await pool.run(jobs, lambda job, reply: results.append(reply))
    assert "DIGEST_SMTP_USERNAME" in info.value.hint
    assert [r.outcome for r in results] == [Outcome.SENT] * 3 + [Outcome.ABORT]
    # The rest was never taken: the caller still holds those claims and releases them.
    assert len(jobs.left) == 16


async def test_refused_connection_stops_with_a_hint(settings: Settings) -> None:
    pool = SmtpPool(_at(settings, free_port()), connect_retries=(0.05,))
    with pytest.raises(SendAborted, match="Cannot connect") as info:
        await pool.run(_Jobs(["a@example.ro", "b@example.ro"]), lambda job, reply: None)
    assert "DIGEST_SMTP_HOST" in info.value.hint


async def test_reconnects_after_the_per_connection_cap(settings: Settings,
                                                       pipelining: bool) -> None:
    connections = 0

    async def counting(s: Settings) -> aiosmtplib.SMTP:
        nonlocal connections
        connections += 1
        return await open_connection(s)

    addresses = [f"r{i}@example.ro" for i in range(7)]
    with fault_server(pipelining=pipelining) as (handler, port):
        s = _at(settings, port, send_concurrency=1, smtp_max_per_connection=3)
        results, _ = await _run(s, addresses, connect=counting)
    assert connections == 3 and len(handler.accepted) == 7
    assert all(r.outcome is Outcome.SENT for r in results.values())


async def test_rate_limit_caps_messages_per_second(settings: Settings, pipelining: bool) -> None:
    addresses = [f"r{i}@example.ro" for i in range(11)]
    with fault_server(pipelining=pipelining) as (_, port):
        started = time.monotonic()
        await _run(_at(settings, port, send_concurrency=3, send_rate=20.0), addresses)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.45  # 11 messages at 20/s: 10 gaps of 50 ms
