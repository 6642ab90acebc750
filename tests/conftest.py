"""Shared fixtures: a real database per test (SQLite file, or a fresh PostgreSQL schema when
DIGEST_TEST_DATABASE_URL is set), settings pointing at it, and a real SMTP server (aiosmtpd)
that captures every message it receives."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import gc
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from digest.config.settings import Settings, SmtpSecurity, Weekday
from digest.store.engine import make_engine, make_sessionmaker, upgrade

# Real servers under a temp folder (Postfix, Dovecot, SpamAssassin), skipped when absent.
pytest_plugins = ["tests.postfix_server", "tests.dovecot_server", "tests.spamassassin_check"]

PG_URL = os.environ.get("DIGEST_TEST_DATABASE_URL")
SECRET = "test-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The connections of one test's schema (named after it), but not the admin's own.
_OURS = "WHERE application_name = :name AND pid <> pg_backend_pid()"


def _schema_url(schema: str) -> str:
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}application_name={schema}&options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def admin() -> Iterator[Engine | None]:
    """One PostgreSQL connection for the whole session that creates and drops test schemas."""
    if not PG_URL:
        yield None
        return
    engine = create_engine(PG_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path, admin: Engine | None) -> Iterator[str]:
    """A database nobody else uses: a SQLite file, or a throwaway PostgreSQL schema."""
    if admin is None:
        yield f"sqlite:///{tmp_path / 'digest.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # Connections are named after the schema, so that whatever a test left open (an engine of
    # a command run in-process, a killed sender's) is closed here: the server's connection
    # slots are shared by the whole suite.
    yield _schema_url(schema)
    ours = {"name": schema}
    # A full gc.collect() costs 0.3-2 s once the suite's heap has grown, and few tests leave a
    # connection open: collect (closing the dropped engines' connections politely) only when
    # the server says some are still there.
    if _left_open(admin, ours):
        gc.collect()
    with admin.begin() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {_OURS}"), ours)
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _left_open(admin: Engine, ours: dict[str, str]) -> bool:
    """Whether the test's connections are still there. A backend whose client has just closed
    takes a few milliseconds to leave pg_stat_activity, and a transaction reads it as of its
    first look: so a fresh transaction per look, for up to a quarter of a second."""
    deadline = time.monotonic() + 0.25
    while True:
        with admin.connect() as conn:
            left = conn.execute(text(f"SELECT count(*) FROM pg_stat_activity {_OURS}"), ours)
            if not left.scalar_one():
                return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.01)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A plain `digest send` follows the schedule: with hour 0 every daily reader is due at any
    # time of today, and with tomorrow as the weekly day no weekly reader is (tests of the
    # schedule itself set their own hours and days, with --at).
    tomorrow = (dt.datetime.now(ZoneInfo("Europe/Bucharest")).weekday() + 1) % 7
    return Settings(
        send_hour=0,
        weekly_day=Weekday(tomorrow),
        database_url=database_url,
        site_name="Știri de Argeș",
        site_url="https://stiri.example.ro",
        base_url="https://stiri.example.ro/digest",
        postal_address="Str. Exemplului 1, Pitești 110000, România",
        from_addr="Știri de Argeș <stiri@example.ro>",
        secret_key=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=25,
        smtp_security=SmtpSecurity.NONE,
        smtp_timeout=5.0,
        lock_dir=tmp_path,
    )


@pytest.fixture(params=[True, False], ids=["pipelining", "lock-step"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Run a sending test twice: the server offers PIPELINING (RFC 2920), and it does not."""
    return bool(request.param)


@dataclass(frozen=True)
class Migration:
    """What Alembic's ``upgrade head`` sent to an empty database, statement by statement (DDL,
    its reflection queries, the version rows), each with its parameters and DB-API call."""

    statements: list[tuple[str, Any, str]]

    def replay(self, engine: Engine) -> None:
        """The same calls on another empty database of the same kind, in one transaction."""
        with engine.begin() as conn:
            cursor = conn.connection.cursor()
            for statement, parameters, call in self.statements:
                if call == "executemany":
                    cursor.executemany(statement, parameters)
                elif call == "no_parameters":
                    cursor.execute(statement)
                else:
                    cursor.execute(statement, parameters)
            cursor.close()


@pytest.fixture(scope="session")
def migration(tmp_path_factory: pytest.TempPathFactory, admin: Engine | None) -> Migration:
    """The real migrations, run once per session on an empty database, and recorded."""
    template = f"t_template_{uuid.uuid4().hex[:12]}"
    if admin is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'digest.db'}"
    else:
        url = _schema_url(template)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{template}"'))
    eng = make_engine(url)
    statements: list[tuple[str, Any, str]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        # Unqualified names only (the search path picks the schema), so a replay is portable.
        assert template not in statement
        call = ("executemany" if executemany else
                "no_parameters" if context is not None and context.no_parameters else "execute")
        statements.append((statement, parameters, call))

    event.listen(eng, "before_cursor_execute", record)
    upgrade(eng)
    eng.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{template}" CASCADE'))
    return Migration(statements)


@pytest.fixture
def engine(settings: Settings, migration: Migration) -> Iterator[Engine]:
    """The test's database at the newest migration. Alembic's upgrade costs ~120 ms a test on
    PostgreSQL (~30 ms on SQLite) and 200 tests ask for it: the statements it sent once for
    the session are replayed instead (~40 ms; ~5 ms), which builds the same schema
    (tests/test_migrations.py compares the two). `digest init` in a test, and
    tests/test_migrations.py, still run the real upgrade."""
    eng = make_engine(settings.database_url)
    migration.replay(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@dataclass
class Received:
    envelope_from: str
    envelope_to: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class CapturingHandler:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        return "250 2.0.0 OK queued"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: CapturingHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that keeps every message it is sent."""
    handler = CapturingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            decode_data=False, data_size_limit=None)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    return replace(settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port)


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` for a CLI run (CliRunner or subprocess)."""
    return {
        "DIGEST_DATABASE_URL": settings.database_url,
        "DIGEST_SITE_NAME": settings.site_name,
        "DIGEST_SITE_URL": settings.site_url,
        "DIGEST_BASE_URL": settings.base_url,
        "DIGEST_POSTAL_ADDRESS": settings.postal_address,
        "DIGEST_FROM": settings.from_addr,
        "DIGEST_SECRET_KEY": settings.secret_key or "",
        "DIGEST_SMTP_HOST": settings.smtp_host,
        "DIGEST_SMTP_PORT": str(settings.smtp_port),
        "DIGEST_SMTP_SECURITY": settings.smtp_security.value,
        "DIGEST_SMTP_TIMEOUT": str(settings.smtp_timeout),
        "DIGEST_LOCK_DIR": str(settings.lock_dir or ""),
        "DIGEST_LOCALE": settings.locale,
        "DIGEST_SEND_HOUR": str(settings.send_hour),
        "DIGEST_WEEKLY_DAY": settings.weekly_day.name.lower(),
        "DIGEST_TIMEZONE": settings.timezone.key,
        "DIGEST_MAX_ITEMS": str(settings.max_items),
        "DIGEST_MAX_LOOKBACK_DAYS": str(settings.max_lookback_days),
    }


# CI installs every real server the tests use; there, a test skipped because one is missing is
# a failure (a green run must not hide an install step that broke).
_SERVERS = ("chromium", "postfix", "dovecot", "spamassassin", "spamd")
_missing_servers: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and os.environ.get("CI"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if any(name in reason.lower() for name in _SERVERS):
            _missing_servers.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _missing_servers:
        print("\nCI must not skip tests for a missing server:\n  " + "\n  ".join(_missing_servers))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
