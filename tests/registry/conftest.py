from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maas.registry.db import Database
from maas.registry.jobs import JobQueue
from maas.registry.keys import KeyService
from maas.registry.service import RegistryService
from maas.storage import ArtifactStore


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def registry(db: Database, store: ArtifactStore) -> RegistryService:
    return RegistryService(db, store)


@pytest.fixture
def keys(db: Database) -> KeyService:
    return KeyService(db)


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db)
