"""Keys, scopes and tenant isolation over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import admin, new_key
from tests.factories import affine_onnx


def test_no_keys_on_loopback_acts_as_default_tenant(client: TestClient) -> None:
    assert client.get("/models").status_code == 200


def test_missing_or_bad_key_is_401(secured: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = secured.get("/models", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


def test_scopes_are_enforced(secured: TestClient) -> None:
    reader = new_key(secured, "acme", ["read"])
    assert secured.get("/models", headers=reader).status_code == 200
    denied = secured.post("/models", headers=reader, files={"file": ("m.onnx", affine_onnx())}, data={"name": "m"})
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert secured.post("/keys", json={"tenant": "x", "scopes": ["read"]}, headers=reader).status_code == 403


def test_another_tenants_model_is_404(secured: TestClient) -> None:
    acme = new_key(secured, "acme", ["read", "manage"])
    globex = new_key(secured, "globex", ["read", "manage"])
    created = secured.post("/models", headers=acme, files={"file": ("m.onnx", affine_onnx())}, data={"name": "m"})
    assert created.status_code == 201
    assert secured.get("/models/m", headers=acme).status_code == 200
    assert secured.get("/models/m", headers=globex).status_code == 404
    assert secured.get("/models/m/versions/1/artifacts/onnx", headers=globex).status_code == 404
    assert secured.get("/models", headers=globex).json()["total"] == 0


def test_key_lifecycle(secured: TestClient) -> None:
    created = secured.post("/keys", json={"tenant": "acme", "scopes": ["read"], "name": "ci"}, headers=admin())
    body = created.json()
    assert created.status_code == 201 and set(body) >= {"id", "key", "tenant", "scopes"}
    listed = secured.get("/keys", headers=admin()).json()["items"]
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    headers = {"Authorization": f"Bearer {body['key']}"}
    assert secured.get("/models", headers=headers).status_code == 200
    assert secured.delete(f"/keys/{body['id']}", headers=admin()).status_code == 200
    assert secured.get("/models", headers=headers).status_code == 401
    assert secured.delete("/keys/nope", headers=admin()).status_code == 404


def test_bad_key_requests(secured: TestClient) -> None:
    bodies = ({"tenant": "acme", "scopes": ["root"]}, {"tenant": "acme"}, {"tenant": "Bad Name", "scopes": ["read"]})
    for body in bodies:
        response = secured.post("/keys", json=body, headers=admin())
        assert response.status_code == 422, body


def test_mutations_are_audited(secured: TestClient) -> None:
    acme = new_key(secured, "acme", ["read", "manage"])
    secured.post("/models", headers=acme, files={"file": ("m.onnx", affine_onnx())}, data={"name": "m"})
    secured.post("/models", headers=acme, files={"file": ("m.onnx", b"junk")}, data={"name": "m"})
    entries = secured.get("/audit", headers=acme).json()["items"]
    assert [(e["action"], e["outcome"]) for e in entries][:2] == [("POST /models", "422"), ("POST /models", "201")]
