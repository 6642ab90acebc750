"""The per-invocation CLI context: settings, engine and sessions, created lazily.

Commands that touch the store refuse to run on a database that ``digest init`` never created,
with a hint, rather than creating tables by surprise -- or, on SQLite, an empty ``digest.db``
file in whatever folder cron started in: only ``init`` (and ``demo``) create a database. The
error names the database looked for and says whether a ``.env`` was found, the usual cause
being a command run from the wrong folder.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from digest.config.errors import ConfigError
from digest.config.settings import Settings, load_settings
from digest.store.engine import make_engine, make_sessionmaker, needs_upgrade, upgrade

__all__ = ["App", "pass_app"]

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """Lazily loaded settings and database handles for one command."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def close(self) -> None:
        """Close the database connections this command opened (if it opened any)."""
        engine = self.__dict__.get("engine")
        if isinstance(engine, Engine):
            engine.dispose()

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    def init_database(self) -> None:
        upgrade(self.engine)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on an initialised database (else a ConfigError telling to run init)."""
        missing = sqlite_file_missing(self.settings.database_url)
        if missing is not None:
            raise ConfigError(f"No database at {missing} ({_where()}).", _INIT_HINT)
        if needs_upgrade(self.engine):
            url = self.engine.url.render_as_string(hide_password=True)
            raise ConfigError(f"The database {url} has no tables yet ({_where()}).", _INIT_HINT)
        return make_sessionmaker(self.engine)


_INIT_HINT = ("run `digest init` to create it (safe to rerun), or run this command from the "
              "folder that has your .env, or set DIGEST_DATABASE_URL")


def _where() -> str:
    env = Path(".env").resolve()
    return f"settings from {env}" if env.is_file() else f"no .env in {Path.cwd()}"


def sqlite_file_missing(database_url: str) -> Path | None:
    """The absolute path of a SQLite database file that does not exist (connecting would
    create it empty), or None: it exists, it is in memory, or the database is not SQLite."""
    try:
        url = make_url(database_url)
    except ArgumentError:  # make_engine says what is wrong with it
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:"):  # a URI filename: leave it to SQLite
        return None
    path = Path(url.database).expanduser().resolve()
    return None if path.exists() else path


def pass_app(f: F) -> F:
    """Decorator: pass the ``App`` as the first argument."""
    return click.pass_obj(f)  # type: ignore[return-value]
