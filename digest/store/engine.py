"""Engine and session factory, and ``upgrade()``: Alembic's ``upgrade head`` run in-process.

SQLite gets WAL, foreign keys and a busy timeout so a CLI command and ``digest serve`` can share
the file; PostgreSQL gets pre-ping so a long-lived web process survives a server restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import ConfigError

__all__ = [
    "SUPPORTED",
    "alembic_config",
    "make_engine",
    "make_sessionmaker",
    "needs_upgrade",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SUPPORTED = ("sqlite", "postgresql")  # what the migrations and the send's own SQL are for
_USE_SUPPORTED = ("use sqlite:///digest.db (one machine) or postgresql+psycopg://user@host/db "
                  "(pip install 'digest[postgres]' for PostgreSQL)")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the per-dialect settings above. Any other database
    is refused here, before a connection: the send's hot statements are written for SQLite
    and PostgreSQL (``delivery.driver_sql``), and would fail half-way through a send."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise ConfigError(f"DIGEST_DATABASE_URL cannot be used: {exc}", _USE_SUPPORTED) from exc
    if backend == "postgres":  # the spelling of some hosting providers' URLs
        raise ConfigError("DIGEST_DATABASE_URL starts with postgres://, which SQLAlchemy "
                          "does not read.", "write postgresql+psycopg:// instead, e.g. "
                          "postgresql+psycopg://user@host/db")
    if backend not in SUPPORTED:
        raise ConfigError(
            f"DIGEST_DATABASE_URL names a {backend} database; digest runs on SQLite or "
            "PostgreSQL only.", _USE_SUPPORTED)
    try:
        if backend == "sqlite":
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"DIGEST_DATABASE_URL cannot be used: {exc}", _USE_SUPPORTED) from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the database driver is not installed: {exc.name}",
                          "pip install 'digest[postgres]' for PostgreSQL") from exc
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after commit (CLI output, tests).
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation: escape it (URLs carry %-encoded options).
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _unreachable(exc: OperationalError) -> ConfigError:
    return ConfigError(f"cannot open the database: {exc.orig}",
                       "check DIGEST_DATABASE_URL and that the server/folder is reachable")


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    cfg = alembic_config(engine)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise _unreachable(exc) from exc


def needs_upgrade(engine: Engine) -> bool:
    """True when the schema is missing (``digest init`` has not been run)."""
    try:
        return not inspect(engine).has_table("alembic_version")
    except OperationalError as exc:
        raise _unreachable(exc) from exc
