"""``POST /train`` in-process (no workers): validation, unknown datasets and Idempotency-Key replays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maas.app import create_app
from maas.config import Settings


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_train_answers_202_with_a_queued_job(client: TestClient) -> None:
    response = client.post("/train", json={"dataset": "iris", "hyperparameters": {"epochs": 5}})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["job"]["id"] == body["job_id"]
    assert response.headers["location"] == f"/jobs/{body['job_id']}"
    assert client.get(f"/jobs/{body['job_id']}").json()["spec"]["model"] == "iris"


def test_idempotency_key_replays_the_same_job(client: TestClient) -> None:
    body: dict[str, Any] = {"dataset": "iris", "hyperparameters": {"epochs": 5}}
    key = {"Idempotency-Key": "run-42"}

    first = client.post("/train", json=body, headers=key)
    again = client.post("/train", json=body, headers=key)
    other = client.post("/train", json={**body, "hyperparameters": {"epochs": 6}}, headers=key)

    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert client.get("/jobs").json()["total"] == 1


@pytest.mark.parametrize("body", [
    {"dataset": "iris", "epochs": 5},  # a top-level typo
    {"dataset": "iris", "hyperparameters": {"epoch": 5}},
    {"dataset": "iris", "architecture": {"type": "mlp", "hiden": [8]}},
], ids=["top-level", "hyperparameters", "architecture"])
def test_unknown_fields_are_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/train", json=body)

    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert response.json()["details"]


@pytest.mark.parametrize(("body", "loc"), [
    ({"dataset": "iris", "hyperparameters": {"epochs": "5"}}, ["hyperparameters", "epochs"]),
    ({"dataset": "iris", "hyperparameters": {"epochs": True}}, ["hyperparameters", "epochs"]),
    ({"dataset": "iris", "hyperparameters": {"standardize": "yes"}}, ["hyperparameters", "standardize"]),
    ({"dataset": "iris", "export": {"onnx": 1}}, ["export", "onnx"]),
    ({"dataset": "iris", "architecture": {"type": "mlp", "hidden": ["8"]}}, ["architecture", "hidden", 0]),
], ids=["string-int", "bool-int", "string-bool", "int-bool", "string-in-list"])
def test_values_of_the_wrong_json_type_are_422(client: TestClient, body: dict[str, Any], loc: list[Any]) -> None:
    # Lax pydantic would read "5" and true as 5 and 1, and "yes" as true: the spec takes the types it documents.
    response = client.post("/train", json=body)

    assert response.status_code == 422 and response.json()["details"][0]["loc"] == loc
    assert client.get("/jobs").json()["total"] == 0


@pytest.mark.parametrize("body", [
    {"dataset": "iris", "architecture": {"type": "mlp", "hidden": [8192] * 16}},
    {"dataset": "iris", "hyperparameters": {"epochs": 10**6}},
    {"dataset": "iris", "hyperparameters": {"batch_size": 10**9}},
], ids=["parameters", "epochs", "batch-size"])
def test_absurd_sizes_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/train", json=body).status_code == 422


def test_unknown_dataset_is_404(client: TestClient) -> None:
    response = client.post("/train", json={"dataset": "no-such-data"})

    assert response.status_code == 404 and response.json()["code"] == "dataset_not_found"
    assert client.get("/jobs").json()["total"] == 0


@pytest.mark.parametrize("body", [
    {"dataset": "iris", "model": "bad/name"},
    {"dataset": "iris", "model": "a b"},
    {"dataset": "iris", "model": "iris\n"},
    {"dataset": "iris", "hyperparameters": {"early_stopping": {"min_delta": "inf"}}},
    {"dataset": "iris", "hyperparameters": {"val_fraction": 0.5, "test_fraction": 0.5}},
], ids=["slash", "space", "newline", "infinite-min-delta", "no-rows-left"])
def test_what_would_only_fail_the_job_later_is_422_at_submit(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/train", json=body)

    assert response.status_code == 422 and response.json()["code"] in ("invalid_input", "invalid_spec")
    assert client.get("/jobs").json()["total"] == 0


@pytest.mark.parametrize(("rows", "hyperparameters"), [
    (3, {}),  # 3 rows: 1 to test, 1 to validate, 1 to train on (2 needed)
    (12, {"val_fraction": 0.5, "test_fraction": 0.45}),  # 6 to test, 6 to validate, none to train on
])
def test_a_dataset_too_small_for_its_splits_is_422_at_submit(client: TestClient, rows: int,
                                                             hyperparameters: dict[str, Any]) -> None:
    csv = "x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(rows))
    assert client.post("/datasets", files={"file": ("tiny.csv", csv.encode())},
                       data={"name": "tiny", "target": "label"}).status_code == 201
    response = client.post("/train", json={"dataset": "tiny", "hyperparameters": hyperparameters})

    assert response.status_code == 422 and response.json()["code"] == "invalid_spec", response.text
    assert "to train on" in response.json()["error"]
    assert client.get("/jobs").json()["total"] == 0
