"""Models and migrations never drift: after `upgrade head`, autogenerate finds nothing to do;
and conftest's ``engine`` fixture, which replays one recorded upgrade, builds the very same
schema as the upgrade itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from digest.config.settings import Settings
from digest.store.engine import make_engine, needs_upgrade, upgrade
from digest.store.models import Base, in_schema_of
from tests.conftest import Migration, _schema_url


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
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "render_as_batch": True,
            "include_object": in_schema_of(engine.dialect.name)})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert {"subscribers", "consent_events", "suppressions", "feeds", "articles", "editions",
            "deliveries", "meta"} <= tables


def test_upgrade_is_idempotent(engine: Engine) -> None:
    assert not needs_upgrade(engine)
    upgrade(engine)  # a second `digest init` changes nothing and does not fail
    assert not needs_upgrade(engine)


@pytest.fixture
def replayed(migration: Migration, admin: Engine | None, tmp_path: Path) -> Iterator[Engine]:
    """A second empty database (file, or schema), built the way conftest's ``engine`` is."""
    schema = f"t_replay_{uuid.uuid4().hex[:12]}"
    if admin is None:
        eng = make_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    else:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng = make_engine(_schema_url(schema))
    migration.replay(eng)
    yield eng
    eng.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _described(engine: Engine) -> dict[str, object]:
    """All the inspector says about each table, and the recorded migration version."""
    insp = inspect(engine)
    tables: dict[str, object] = {
        name: ([(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns(name)],
               insp.get_pk_constraint(name),
               *(sorted(map(repr, found)) for found in (
                   insp.get_indexes(name), insp.get_unique_constraints(name),
                   insp.get_foreign_keys(name), insp.get_check_constraints(name))))
        for name in insp.get_table_names()}
    with engine.connect() as conn:
        tables["version"] = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return tables


def test_the_engine_fixture_builds_what_upgrade_builds(engine: Engine, replayed: Engine) -> None:
    real = _described(engine)
    assert len(real) > 9 and real["version"]
    assert _described(replayed) == real
