"""`alembic upgrade head` on an empty database gives exactly the ORM's schema (no drift), on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from maas.registry.db import Database
from maas.registry.orm import Base


def test_upgrade_head_matches_orm(database_url: str) -> None:
    db = Database(database_url)
    assert db.current_revision() is None
    db.upgrade()
    assert db.schema_is_current()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    db.upgrade()
    assert db.current_revision() == db.head_revision()
    db.dispose()
