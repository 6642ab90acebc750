"""Models and migrations never drift: after `upgrade head`, autogenerate finds nothing to do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from digest.config.settings import Settings
from digest.store.engine import make_engine, needs_upgrade, upgrade
from digest.store.models import Base


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """Alembic's real upgrade on the empty database: this module checks the migrations
    themselves (conftest's ``engine`` replays a recording of one upgrade)."""
    eng = make_engine(settings.database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_upgrade_head_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                          "render_as_batch": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert {"subscribers", "consent_events", "suppressions", "feeds", "articles", "editions",
            "deliveries", "meta"} <= tables


def test_upgrade_is_idempotent(engine: Engine) -> None:
    assert not needs_upgrade(engine)
    upgrade(engine)  # a second `digest init` changes nothing and does not fail
    assert not needs_upgrade(engine)
