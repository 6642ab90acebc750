"""The whole send, in-process, against real SMTP servers: the happy path, every fault of the
design's reply table, reruns that finish the job, and exactly one digest per due reader."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import ConfigError, SendAborted
from digest.config.settings import Settings
from digest.readers.lifecycle import is_suppressed
from digest.run.commands import SendOptions, send_digest
from digest.store.models import Delivery, DeliveryState, Subscriber, SubscriberStatus
from tests.conftest import SmtpServer, free_port
from tests.sending_data import add_articles, add_others, add_readers
from tests.smtp_faults import FaultHandler, fault_server

READERS = [f"cititor{i}@example.ro" for i in range(12)]


def _states(sessions: sessionmaker[Session]) -> dict[str, DeliveryState]:
    with sessions() as session:
        rows = session.execute(select(Subscriber.email, Delivery.state)
                               .join(Delivery, Delivery.subscriber_id == Subscriber.id))
        return {email: state for email, state in rows}


def _at(settings: Settings, port: int, **changes: object) -> Settings:
    return replace(settings, smtp_host="127.0.0.1", smtp_port=port, **changes)  # type: ignore[arg-type]


def test_sends_one_digest_per_due_reader_and_nothing_twice(
        smtp_settings: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    article_ids = add_articles(sessions)
    add_readers(sessions, READERS[:3])
    add_others(sessions)
    report = send_digest(engine, replace(smtp_settings, batch_size=2))
    assert (report.planned, report.sent, report.skipped, report.exit_code) == (4, 3, 1, 0)
    assert sorted(r.envelope_to[0] for r in smtp_server.received) == READERS[:3]
    message = smtp_server.received[0].message
    for header in ("From", "To", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert len(message.get_all(header) or []) == 1, header
    assert message["To"].addresses[0].addr_spec == smtp_server.received[0].envelope_to[0]
    assert message["List-Unsubscribe"].startswith("<https://stiri.example.ro/digest/")
    with sessions() as session:
        sent = session.scalars(select(Delivery).where(Delivery.state == DeliveryState.SENT)).all()
        assert {d.message_id for d in sent} == {r.message["Message-ID"]
                                                for r in smtp_server.received}
        assert all(d.smtp_code == 250 and d.smtp_reply == "250 2.0.0 OK queued" for d in sent)
        assert all(sorted(d.article_ids) == sorted(article_ids) for d in sent)
        reader = session.scalars(select(Subscriber).where(Subscriber.email == READERS[0])).one()
        assert reader.last_digest_at is not None and reader.last_digest_at <= sent[0].sent_at  # type: ignore[operator]
    assert _states(sessions)["meteo@example.ro"] is DeliveryState.SKIPPED

    again = send_digest(engine, smtp_settings)
    assert (again.planned, again.sent, again.exit_code) == (0, 0, 0)
    assert len(smtp_server.received) == 3


def test_next_edition_repeats_no_article(smtp_settings: Settings, smtp_server: SmtpServer,
                                         sessions: sessionmaker[Session]) -> None:
    """Two past editions (their cutoffs are the ends of their days): the second one carries
    only what was published after the first one's cutoff."""
    engine = sessions.kw["bind"]
    tz = smtp_settings.timezone
    today = dt.datetime.now(tz).date()
    day1, day2 = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    end1 = dt.datetime.combine(day2, dt.time(), tzinfo=tz)  # the end of day1
    end2 = dt.datetime.combine(today, dt.time(), tzinfo=tz)
    old = add_articles(sessions, before=end1)
    add_readers(sessions, READERS[:2])
    assert send_digest(engine, smtp_settings, SendOptions(date=day1)).sent == 2
    fresh = add_articles(sessions, before=end2, prefix="b")
    assert send_digest(engine, smtp_settings, SendOptions(date=day2)).sent == 2
    with sessions() as session:
        got = session.execute(select(Delivery.edition_id, Delivery.article_ids)
                              .where(Delivery.state == DeliveryState.SENT)
                              .order_by(Delivery.edition_id)).all()
        readers = session.scalars(select(Subscriber)).all()
    assert [sorted(ids) for _, ids in got] == [sorted(old)] * 2 + [sorted(fresh)] * 2
    assert all(r.last_digest_at == end2.astimezone(dt.UTC) for r in readers)
    assert len(smtp_server.received) == 4


def test_faults_end_in_the_right_state_and_reruns_finish(settings: Settings,
                                                         sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    add_articles(sessions)
    add_readers(sessions, READERS)
    handler = FaultHandler(
        script={"cititor1@example.ro": ["550 5.1.1 <cititor1@example.ro>: no such user"],
                "cititor2@example.ro": ["451 4.3.0 try later", "452 4.3.1 full queue"],
                "cititor3@example.ro": ["454 4.7.0 slow down"],
                # a NUL in a reply (PostgreSQL text cannot hold one): dropped, still recorded
                "cititor4@example.ro": ["552 5.2.2 mailbox\0 full"]},
        drop_at={2}, cut_at={4}, slow={"cititor11@example.ro": 1.2})
    with fault_server(handler) as (_, port):
        s = _at(settings, port, smtp_timeout=0.6, send_concurrency=2, batch_size=5)
        first = send_digest(engine, s)
        assert first.exit_code == 1 and first.sent + first.deferred + first.failed == 12
        states = _states(sessions)
        assert states["cititor1@example.ro"] is DeliveryState.FAILED
        for soft in ("cititor2@example.ro", "cititor3@example.ro", "cititor4@example.ro",
                     "cititor11@example.ro"):
            assert states[soft] is DeliveryState.DEFERRED, soft
        assert Counter(states.values())[DeliveryState.DEFERRED] == 6  # + the 421 and the cut
        with sessions() as session:
            bounced = session.scalars(select(Subscriber)
                                      .where(Subscriber.email == READERS[1])).one()
            assert bounced.status is SubscriberStatus.BOUNCED
            assert is_suppressed(session, bounced.email)
            assert session.scalars(select(Delivery.smtp_reply).join(Subscriber).where(
                Subscriber.email == "cititor4@example.ro")).one() == "552 5.2.2 mailbox full"

        # A plain rerun waits for the backoff; --retry-deferred does not.
        assert send_digest(engine, s).sent == 0
        second = send_digest(engine, s, SendOptions(retry_deferred=True))
        third = send_digest(engine, s, SendOptions(retry_deferred=True))
    assert second.sent + third.sent == 6 and third.exit_code == 0
    states = _states(sessions)
    assert Counter(states.values()) == {DeliveryState.SENT: 11, DeliveryState.FAILED: 1}
    # Every due reader has a digest; only the cut message (server kept it, never answered)
    # can arrive twice, with the same Message-ID.
    copies = {rcpt: len(m) for rcpt, m in handler.accepted.items()}
    assert set(copies) == set(READERS) - {READERS[1]}
    twice = [rcpt for rcpt, n in copies.items() if n > 1]
    assert len(twice) <= 1
    for rcpt in twice:
        assert len({handler.message(rcpt, i)["Message-ID"] for i in range(2)}) == 1


def test_policy_refusal_stops_and_leaves_readers_alone(settings: Settings,
                                                       sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    add_articles(sessions)
    add_readers(sessions, READERS)
    handler = FaultHandler(script={"cititor4@example.ro": ["554 5.7.1 Relaying denied"]})
    with fault_server(handler) as (_, port):
        s = _at(settings, port, send_concurrency=1, batch_size=4)
        report = send_digest(engine, s)
        assert isinstance(report.error, SendAborted) and report.exit_code == 1
        assert "5.7.1" in report.error.message
        states = _states(sessions)
        assert Counter(states.values()) == {DeliveryState.SENT: 4, DeliveryState.PENDING: 8}
        with sessions() as session:
            assert set(session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}
        rerun = send_digest(engine, s)  # the operator fixed it (the script is used up)
    assert rerun.sent == 8 and rerun.exit_code == 0
    assert all(len(m) == 1 for m in handler.accepted.values()) and len(handler.accepted) == 12


def test_unreachable_server_leaves_everything_to_the_next_run(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    add_articles(sessions)
    add_readers(sessions, READERS[:5])
    port = free_port()
    report = send_digest(engine, _at(settings, port))
    assert isinstance(report.error, SendAborted) and "Cannot connect" in report.error.message
    assert set(_states(sessions).values()) == {DeliveryState.PENDING}
    with fault_server() as (handler, live):
        again = send_digest(engine, _at(settings, live))
    assert again.sent == 5 and sorted(handler.accepted) == READERS[:5]


def test_refuses_without_postal_address_or_secret(smtp_settings: Settings,
                                                  sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    with pytest.raises(ConfigError, match="DIGEST_POSTAL_ADDRESS"):
        send_digest(engine, replace(smtp_settings, postal_address=" "))
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        send_digest(engine, replace(smtp_settings, secret_key=None))


def test_dry_run_renders_everything_and_records_nothing(
        smtp_settings: Settings, smtp_server: SmtpServer, sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    add_articles(sessions)
    add_readers(sessions, READERS[:4])
    add_others(sessions)
    report = send_digest(engine, smtp_settings, SendOptions(dry_run=True))
    assert (report.composed, report.skipped, report.distinct_digests) == (4, 1, 1)
    assert report.exit_code == 0 and smtp_server.received == []
    assert _states(sessions) == {}
