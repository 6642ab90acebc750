"""The Python API: what an integrator calls instead of the CLI, typed and stable.

Everything here is also a CLI command, and does exactly what the command does::

    from digest import api

    store = api.open_store()                                  # .env + environment, like the CLI
    api.add_subscriber(store, "ana@exemplu.ro", name="Ana", topics=["sport"])
    api.import_subscribers(store, Path("people.csv"))         # -> report.imported, .problems
    api.import_articles(store, Path("articles.jsonl"))
    report = api.send_edition(store)                          # today's daily edition
    print(report.summary(), report.exit_code)

Functions raise ``DigestError`` (with ``.hint``) for what the operator must fix; a bad row of an
import is reported in the returned report, never raised. Nothing here prints.

May import: every package but cli and web.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.json_import import ImportReport as ArticleImportReport
from digest.articles.json_import import import_articles as _import_articles
from digest.config.errors import DigestError
from digest.config.settings import Settings, load_settings
from digest.readers import lifecycle
from digest.readers.csv_io import ImportReport as SubscriberImportReport
from digest.readers.csv_io import import_subscribers as _import_subscribers
from digest.run.commands import SendOptions, run_all, send_digest
from digest.run.report import RunReport
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from digest.store.models import Frequency, SubscriberStatus
from digest.topics import parse_topics

__all__ = [
    "ArticleImportReport",
    "DigestError",
    "Frequency",
    "RunReport",
    "Settings",
    "Store",
    "SubscriberImportReport",
    "SubscriberStatus",
    "add_subscriber",
    "import_articles",
    "import_subscribers",
    "load_settings",
    "open_store",
    "run",
    "send_edition",
]


@dataclass(frozen=True)
class Store:
    """Settings and database handles, opened once and passed to every call."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def open_store(settings: Settings | None = None, *, upgrade_schema: bool = True) -> Store:
    """Open the database of ``settings`` (default: ``load_settings()``), creating or upgrading
    its schema first unless ``upgrade_schema`` is false (what ``digest init`` does)."""
    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    if upgrade_schema:
        upgrade(engine)
    return Store(settings, engine, make_sessionmaker(engine))


def add_subscriber(store: Store, email: str, *, name: str | None = None,
                   topics: Iterable[str] = (), frequency: Frequency = Frequency.DAILY,
                   timezone: str | None = None, locale: str | None = None,
                   confirmed: bool = True) -> int:
    """``digest subscribers add``: add one reader (active, or pending confirmation when not
    ``confirmed``); return their id. Raises ``DigestError`` for a bad, known or erased address."""
    status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
    with store.sessions.begin() as session:
        sub = lifecycle.add_subscriber(
            session, email, name=name, topics=parse_topics(list(topics)), frequency=frequency,
            timezone=timezone, locale=locale, status=status)
        session.flush()
        return sub.id


def import_subscribers(store: Store, path: Path, *,
                       status: SubscriberStatus = SubscriberStatus.ACTIVE,
                       ) -> SubscriberImportReport:
    """``digest subscribers import``: a CSV with a header row (``email`` required)."""
    return _import_subscribers(store.sessions, path, default_status=status)


def import_articles(store: Store, path: Path) -> ArticleImportReport:
    """``digest articles import``: a JSON array or JSON Lines of article records."""
    with path.open(encoding="utf-8-sig") as handle:
        return _import_articles(store.sessions, handle, default_tz=store.settings.timezone)


def send_edition(store: Store, *, frequency: Frequency = Frequency.DAILY,
                 date: dt.date | None = None, dry_run: bool = False,
                 retry_deferred: bool = False) -> RunReport:
    """``digest send``: plan the edition (default: today's) and send it to every due reader."""
    options = SendOptions(date=date, frequency=frequency, dry_run=dry_run,
                          retry_deferred=retry_deferred)
    return send_digest(store.engine, store.settings, options)


def run(store: Store) -> RunReport:
    """``digest run``: fetch every feed, then send today's daily edition (the cron job)."""
    return run_all(store.engine, store.settings, store.sessions)
