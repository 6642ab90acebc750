"""Helpers for the web tests: the app on a real uvicorn server in a thread, a settable clock,
waiting for mail, and a snapshot of everything a request could change."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings
from digest.readers.lifecycle import Origin, add_subscriber
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from digest.store.models import ConsentEvent, Subscriber, Suppression, utcnow
from digest.web import create_app
from digest.web.context import path_prefix
from digest.web.security import RateLimiter
from tests.conftest import Received, SmtpServer, free_port


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class LiveServer:
    origin: str  # http://127.0.0.1:PORT
    settings: Settings
    sessions: sessionmaker[Session]
    clock: Clock

    @property
    def base(self) -> str:
        """Where the public base URL's paths answer on this server (prefix included)."""
        return self.origin + path_prefix(self.settings.base_url)

    def local(self, public_url: str) -> str:
        """A link from an email (``https://stiri.example.ro/digest/...``) on this server."""
        base = self.settings.base_url.rstrip("/")
        assert public_url.startswith(base + "/"), public_url
        return self.base + public_url[len(base):]


@contextmanager
def run_server(settings: Settings, limiter: RateLimiter | None = None,
               sessions: sessionmaker[Session] | None = None) -> Iterator[LiveServer]:
    """``create_app(settings)`` on uvicorn, 127.0.0.1, a free port, in a thread; on an
    initialised database unless ``sessions`` is given."""
    engine = make_engine(settings.database_url)
    if sessions is None:
        upgrade(engine)  # idempotent: as after `digest init`
        sessions = make_sessionmaker(engine)
    clock = Clock()
    app = create_app(settings, sessions=sessions, clock=clock,
                     limiter=limiter or RateLimiter(limit=1000))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", settings, sessions, clock)
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()


def wait_for_mail(smtp: SmtpServer, count: int, timeout: float = 10.0) -> list[Received]:
    """Wait until ``smtp`` has received ``count`` messages (the app sends after answering)."""
    deadline = time.monotonic() + timeout
    while len(smtp.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(smtp.received) >= count, f"expected {count} message(s), got {len(smtp.received)}"
    return smtp.received


def sent_recorded(sessions: sessionmaker[Session], email: str, since: dt.datetime | None = None,
                  timeout: float = 10.0) -> dt.datetime:
    """Wait until the app has recorded ``confirmation_sent_at`` (just after the SMTP reply),
    at ``since`` or later."""
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            sent_at = session.scalar(select(Subscriber.confirmation_sent_at)
                                     .where(Subscriber.email == email))
        if sent_at is not None and (since is None or sent_at >= since):
            return sent_at
        assert time.monotonic() < deadline, f"confirmation_sent_at never recorded for {email}"
        time.sleep(0.02)


def link_in(message: Received, path: str) -> str:
    """The first URL in the text part that contains ``path`` (e.g. ``/confirm/``)."""
    part = message.message.get_body(preferencelist=("plain",))
    assert part is not None
    for word in part.get_content().split():
        if path in word and word.startswith("http"):
            return word
    raise AssertionError(f"no {path} link in the message")


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Everything a reader request could change, to compare before and after."""
    with sessions() as session:
        subs = [
            {c.name: getattr(s, c.name) for c in Subscriber.__table__.columns}
            for s in session.scalars(select(Subscriber).order_by(Subscriber.id))
        ]
        events = [(e.subscriber_id, e.kind, e.source)
                  for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
        suppressions = list(session.scalars(select(Suppression.email_hash)))
    return {"subscribers": subs, "events": events, "suppressions": suppressions}


def add_reader(sessions: sessionmaker[Session], email: str = "ana@example.ro", **kw: Any) -> int:
    """A subscriber added the way the CLI would; returns the id."""
    with sessions.begin() as session:
        return add_subscriber(session, email, origin=Origin("cli"), **kw).id
