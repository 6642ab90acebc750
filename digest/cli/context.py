"""The per-invocation CLI context: settings, engine and sessions, created lazily.

Commands that touch the store refuse to run on a database that ``digest init`` never created,
with a hint, rather than creating tables by surprise.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
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

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    def init_database(self) -> None:
        upgrade(self.engine)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on an initialised database (else a ConfigError telling to run init)."""
        if needs_upgrade(self.engine):
            raise ConfigError(
                "The database has no tables yet.",
                "run `digest init` first (it is safe to run again)",
            )
        return make_sessionmaker(self.engine)


def pass_app(f: F) -> F:
    """Decorator: pass the ``App`` as the first argument."""
    return click.pass_obj(f)  # type: ignore[return-value]
