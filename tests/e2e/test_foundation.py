"""The foundation user story against a real ``maas serve``: datasets, model import, aliases, keys, health."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, free_port
from tests.factories import classifier_onnx

pytestmark = pytest.mark.e2e


def test_user_story(server: Server) -> None:
    with server.client() as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/readyz").json()["checks"]["migrations"] is True
        digits = http.post("/datasets", json={"name": "digits", "builtin": "digits"})
        assert digits.status_code == 201 and digits.json()["schema"]["input_shape"] == [64]
        csv = b"a,b,label\n" + b"".join(f"{i},{i % 7},{'yes' if i % 2 else 'no'}\n".encode() for i in range(30))
        uploaded = http.post("/datasets", files={"file": ("toy.csv", csv)}, data={"name": "toy"})
        assert uploaded.status_code == 201 and uploaded.json()["schema"]["classes"] == ["no", "yes"]
        assert http.post("/datasets", files={"file": ("x.csv", b"\xff\xfe")}, data={"name": "x"}).status_code == 422
        assert http.get("/datasets").json()["total"] == 2

        blob = classifier_onnx()
        for _ in range(2):
            imported = http.post("/models", files={"file": ("m.onnx", blob)},
                                 data={"name": "toy", "metadata": '{"classes": ["a", "b", "c"]}'})
            assert imported.status_code == 201, imported.text
        assert http.get("/models/toy/versions").json()["total"] == 2
        download = http.get("/models/toy/versions/2/artifacts/onnx")
        assert hashlib.sha256(download.content).hexdigest() == imported.json()["artifacts"][0]["sha256"]
        assert http.put("/models/toy/aliases/production", json={"version": 2}).status_code == 200
        assert http.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
        assert http.get("/models/toy").json()["aliases"] == {"production": 1}
        assert http.delete("/models/toy/versions/1").status_code == 409
        assert http.delete("/models/toy/versions/2").status_code == 204
        metrics = http.get("/metrics").text
        assert 'route="/models/{name}/versions"' in metrics and "maas_registry_model_versions" in metrics
        assert http.post("/keys", json={"tenant": "a", "scopes": ["read"]}).status_code == 403


def test_keys_and_tenants(launch: Callable[..., Server], tmp_path: Path) -> None:
    server = launch(MAAS_ADMIN_KEY="e2e-admin")
    admin = {"Authorization": "Bearer e2e-admin"}
    with server.client() as http:
        assert http.get("/models").status_code == 401
        acme = http.post("/keys", json={"tenant": "acme", "scopes": ["read", "manage"]}, headers=admin).json()
        globex = http.post("/keys", json={"tenant": "globex", "scopes": ["read"]}, headers=admin).json()
        as_acme = {"Authorization": f"Bearer {acme['key']}"}
        as_globex = {"Authorization": f"Bearer {globex['key']}"}
        created = http.post("/models", files={"file": ("m.onnx", classifier_onnx())}, data={"name": "m"},
                            headers=as_acme)
        assert created.status_code == 201
        assert http.get("/models/m", headers=as_globex).status_code == 404
        assert http.post("/models", files={"file": ("m.onnx", b"x")}, data={"name": "m"},
                         headers=as_globex).status_code == 403
        assert http.delete(f"/keys/{acme['id']}", headers=admin).status_code == 200
        assert http.get("/models", headers=as_acme).status_code == 401


def test_cli_keys_and_non_loopback_refusal(tmp_path: Path) -> None:
    env_dir = tmp_path / "cli"
    import os

    env = {**os.environ, "MAAS_DATA_DIR": str(env_dir)}
    refused = subprocess.run([sys.executable, "-m", "maas", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "Refusing to bind 0.0.0.0" in refused.stdout + refused.stderr
    created = subprocess.run([sys.executable, "-m", "maas", "keys", "create", "--tenant", "acme", "--scopes", "read"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0 and "maas_" in created.stdout
    listed = subprocess.run([sys.executable, "-m", "maas", "keys", "list"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert "acme" in listed.stdout
    version = subprocess.run([sys.executable, "-m", "maas", "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("maas ")
