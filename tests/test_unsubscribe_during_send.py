"""A reader who leaves with one click while a send is running is not mailed afterwards: the
app on a real uvicorn server answers the RFC 8058 POSTs while ``send_digest`` sends to a real,
slowed aiosmtpd; no reader's RCPT arrives later than one status check after their 200."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import httpx
from sqlalchemy import select

from digest.config.settings import Settings
from digest.render.message import Renderer
from digest.render.tokens import Purpose
from digest.run.commands import send_digest
from digest.run.report import RunReport
from digest.run.sender import STATUS_EVERY
from digest.store.engine import make_engine
from digest.store.models import Delivery, DeliveryState, Subscriber
from tests.sending_data import add_articles
from tests.smtp_faults import FaultHandler, fault_server
from tests.web_support import add_reader, run_server

READERS = [f"cititor{i:02d}@example.ro" for i in range(60)]
# A message already handed to a connection when the status was read may still go out: allow
# one check interval and that message's own transaction.
SLACK = STATUS_EVERY + 0.15


def test_one_click_during_a_send_stops_that_readers_message(settings: Settings) -> None:
    handler = FaultHandler(delay=0.06)  # ~30 messages/s over two connections
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port, send_concurrency=2, batch_size=25)
        with run_server(s) as live:
            add_articles(live.sessions)
            ids = {email: add_reader(live.sessions, email) for email in READERS}
            renderer = Renderer(s)
            engine = make_engine(s.database_url)
            done: list[RunReport] = []
            sender = threading.Thread(target=lambda: done.append(send_digest(engine, s)))
            sender.start()
            deadline = time.monotonic() + 10
            while handler.data_count < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            answered: dict[str, float] = {}
            with httpx.Client() as web:
                for email in READERS[10::3]:  # spread over this batch and the next ones
                    url = live.local(renderer.link(Purpose.UNSUBSCRIBE, ids[email]))
                    response = web.post(url, data={"List-Unsubscribe": "One-Click"})
                    assert response.status_code == 200
                    answered[email] = time.time()
                    time.sleep(0.03)
            sender.join(30)
            engine.dispose()
    assert done and done[0].error is None
    late = {email: [round(t - answered[email], 3) for t in handler.rcpt_at[email]
                    if t > answered[email] + SLACK] for email in answered}
    assert not any(late.values()), f"mailed after their one-click 200 (s later): {late}"
    with live.sessions() as session:
        rows = {email: state for email, state in session.execute(
            select(Subscriber.email, Delivery.state)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id))}
    skipped = {email for email, state in rows.items() if state is DeliveryState.SKIPPED}
    assert skipped and skipped <= set(answered)  # recorded as skipped, nobody else
    assert skipped.isdisjoint(handler.accepted)
    mailed = set(answered) - skipped
    assert all(handler.rcpt_at[email] for email in mailed)
    assert done[0].sent + done[0].skipped == len(READERS)
