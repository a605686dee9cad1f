from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maas.app import create_app
from maas.config import Settings

ADMIN_KEY = "test-admin-key"
AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path, database_url: str) -> Iterator[AppFactory]:
    """Builds an in-process app (real DB, real store, no job workers) and its test client."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        settings = Settings(data_dir=tmp_path / "data", database_url=database_url, workers=0, **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """No keys configured and a loopback bind: requests act as tenant ``default``."""
    return make_client()


@pytest.fixture
def secured(make_client: AppFactory) -> TestClient:
    return make_client(admin_key=ADMIN_KEY)


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def new_key(client: TestClient, tenant: str, scopes: list[str]) -> dict[str, str]:
    response = client.post("/keys", json={"tenant": tenant, "scopes": scopes, "name": "t"}, headers=admin())
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}
