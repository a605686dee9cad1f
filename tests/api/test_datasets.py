from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import new_key

CSV = b"a,b,species\n1,2,x\n3,4,y\n5,6,x\n7,8,z\n9,1,y\n2,2,z\n"


def upload(client: TestClient, name: str, data: bytes, filename: str = "d.csv", **fields: str):
    return client.post("/datasets", files={"file": (filename, data)}, data={"name": name, **fields})


def test_builtin_upload_list_get_delete(client: TestClient) -> None:
    builtin = client.post("/datasets", json={"name": "digits", "builtin": "digits"})
    assert builtin.status_code == 201, builtin.text
    body = builtin.json()
    assert body["task"] == "classification" and body["n_rows"] == 1797 and body["modality"] == "tabular"
    assert body["schema"]["input_shape"] == [64] and body["schema"]["classes"] == list(range(10))
    uploaded = upload(client, "flowers", CSV, target="species")
    assert uploaded.status_code == 201, uploaded.text
    flowers = uploaded.json()
    assert flowers["sha256"] == hashlib.sha256(CSV).hexdigest() and flowers["schema"]["features"] == ["a", "b"]
    assert set(flowers) >= {"id", "name", "task", "modality", "n_rows", "schema", "sha256"}
    assert client.get("/datasets").json()["total"] == 2
    assert client.get(f"/datasets/{flowers['id']}").json()["name"] == "flowers"
    assert client.get("/datasets/flowers").json()["id"] == flowers["id"]
    assert client.delete("/datasets/flowers").status_code == 204
    assert client.get("/datasets/flowers").status_code == 404


def test_curl_default_content_type_is_accepted(client: TestClient) -> None:
    response = client.post("/datasets", content=b'{"name": "iris", "builtin": "iris"}',
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 201 and response.json()["schema"]["classes"][0] == "setosa"


@pytest.mark.parametrize(("call", "status", "code"), [
    (lambda c: upload(c, "bad", b"a,b\n1,2\n3\n"), 422, "invalid_dataset"),
    (lambda c: upload(c, "bad", b"", "d.csv"), 422, "invalid_input"),
    (lambda c: upload(c, "bad", CSV, target="nope"), 422, "invalid_dataset"),
    (lambda c: upload(c, "bad name/..", CSV, target="species"), 422, "invalid_input"),
    (lambda c: c.post("/datasets", json={"name": "x", "builtin": "mnist"}), 422, "invalid_input"),
    (lambda c: c.post("/datasets", json={"name": "x", "builtin": "iris", "oops": 1}), 422, "invalid_input"),
    (lambda c: c.post("/datasets", content=b"{", headers={"content-type": "application/json"}), 400, "malformed_json"),
    (lambda c: c.post("/datasets", content=b"x", headers={"content-type": "text/csv"}), 415, "unsupported_media_type"),
    (lambda c: c.get("/datasets?limit=0"), 422, "invalid_input"),
])
def test_bad_dataset_requests(client: TestClient, call, status: int, code: str) -> None:
    response = call(client)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert client.get("/datasets").json()["total"] == 0


def test_duplicate_name_is_409(client: TestClient) -> None:
    assert client.post("/datasets", json={"name": "iris", "builtin": "iris"}).status_code == 201
    again = client.post("/datasets", json={"name": "iris", "builtin": "iris"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"


def test_datasets_are_tenant_scoped(secured: TestClient) -> None:
    acme, globex = new_key(secured, "acme", ["read", "train"]), new_key(secured, "globex", ["read", "train"])
    created = secured.post("/datasets", json={"name": "iris", "builtin": "iris"}, headers=acme).json()
    assert secured.get(f"/datasets/{created['id']}", headers=globex).status_code == 404
    assert secured.get("/datasets", headers=globex).json()["total"] == 0


def test_upload_limit(make_client) -> None:
    small = make_client(max_upload_mb=0.001)
    response = upload(small, "big", CSV + b"1,2,x\n" * 500, target="species")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_train_spec_is_checked_against_the_dataset(client: TestClient) -> None:
    cnn_on_iris = client.post("/train", json={"dataset": "iris", "architecture": {"type": "cnn"}})
    assert cnn_on_iris.status_code == 422 and cnn_on_iris.json()["code"] == "invalid_spec"
    assert client.get("/jobs").json()["total"] == 0
    assert client.post("/train", json={"dataset": "nope"}).status_code == 404
    assert client.post("/train", json={"dataset": "iris", "epochz": 3}).status_code == 422
