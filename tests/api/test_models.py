"""The registry over HTTP: import, list, get, download, aliases, delete, with every error a JSON body."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from tests.factories import affine_onnx, classifier_onnx, identity_onnx


def import_model(client: TestClient, name: str, blob: bytes, metadata: dict | None = None, **kw: object):
    data = {"name": name}
    if metadata is not None:
        data["metadata"] = orjson.dumps(metadata).decode()
    return client.post("/models", files={"file": ("m.onnx", blob)}, data=data, **kw)  # type: ignore[arg-type]


def test_import_list_get_download(client: TestClient) -> None:
    blob = classifier_onnx()
    response = import_model(client, "clf", blob, {"classes": ["a", "b", "c"], "description": "toy"})
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["model"] == "clf" and version["version"] == 1 and version["task"] == "classification"
    (artifact,) = version["artifacts"]
    assert artifact["kind"] == "onnx" and artifact["sha256"] == hashlib.sha256(blob).hexdigest()
    assert artifact["size_bytes"] == len(blob)
    assert set(version) >= {"metrics", "aliases", "lineage", "created_at"}
    assert client.get("/models").json()["items"][0]["name"] == "clf"
    assert client.get("/models/clf").json()["latest_version"] == 1
    assert client.get("/models/clf/versions").json()["total"] == 1
    download = client.get("/models/clf/versions/1/artifacts/onnx")
    assert download.status_code == 200 and download.content == blob
    assert download.headers["x-content-sha256"] == artifact["sha256"]


def test_aliases_over_http(client: TestClient) -> None:
    for _ in range(2):
        assert import_model(client, "m", affine_onnx()).status_code == 201
    put = client.put("/models/m/aliases/production", json={"version": 2})
    assert put.status_code == 200 and put.json()["aliases"] == ["production"]
    assert client.get("/models/m").json()["aliases"] == {"production": 2}
    assert client.put("/models/m/aliases/production", json={"version": 1}).status_code == 200
    assert client.delete("/models/m/versions/1").json()["code"] == "version_in_use"
    assert client.delete("/models/m/versions/2").status_code == 204
    assert client.delete("/models/m/aliases/production").status_code == 204
    assert client.delete("/models/m/aliases/production").status_code == 404
    assert client.put("/models/m/aliases/production", json={"version": 9}).status_code == 404


@pytest.mark.parametrize("version", [True, "1", 1.0, None])
def test_an_alias_takes_a_json_integer_only(client: TestClient, version: object) -> None:
    # Lax pydantic would read true and "1" as version 1: a JSON API takes the type it documents.
    assert import_model(client, "m", affine_onnx()).status_code == 201
    response = client.put("/models/m/aliases/production", json={"version": version})
    assert response.status_code == 422 and response.json()["details"][0]["loc"] == ["version"]
    assert client.get("/models/m").json()["aliases"] == {}


def _graph_output_not_utf8() -> bytes:
    """The affine model with its graph output's name (the last "output") made invalid UTF-8: found by fuzzing,
    onnx's checker then raised UnicodeDecodeError, a 500."""
    head, _, tail = affine_onnx().rpartition(b"output")
    return head + b"outp\xb7t" + tail


@pytest.mark.parametrize(("blob", "code"), [(b"not onnx", "invalid_model"),
                                           (b"\x80\x04\x95\x00pickle", "invalid_model"),
                                           (_graph_output_not_utf8(), "invalid_model")])
def test_bad_uploads_are_422_and_store_nothing(client: TestClient, blob: bytes, code: str) -> None:
    response = import_model(client, "bad", blob)
    assert response.status_code == 422 and response.json()["code"] == code
    assert client.get("/models").json()["total"] == 0


@pytest.mark.parametrize(("inputs", "message"), [
    ([helper.make_tensor_value_info("text", TensorProto.STRING, [None])], "input 'text' is BYTES"),
    ([helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, None)], "input 'x' is not a tensor"),
    ([helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
      helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2])], "takes 2 inputs ('a', 'b')"),
])
def test_a_model_whose_input_maas_cannot_feed_is_refused_at_import(client: TestClient, inputs: list,
                                                                   message: str) -> None:
    # Accepted, such a model would only fail later: at its first load, as a 500 to whoever promoted or used it.
    response = import_model(client, "odd", identity_onnx(inputs))
    assert response.status_code == 422 and response.json()["code"] == "invalid_model"
    assert message in response.json()["error"]
    assert client.get("/models").json()["total"] == 0


BIG = 2**63  # one more than a 64-bit database integer holds


def test_numbers_beyond_a_database_integer_are_a_clean_4xx(client: TestClient) -> None:
    assert import_model(client, "m", affine_onnx()).status_code == 201
    for path in (f"/models?offset={BIG}", f"/models/m/versions?offset={BIG}", f"/datasets?offset={BIG}",
                 f"/jobs?offset={BIG}"):
        response = client.get(path)
        assert response.status_code == 422 and response.json()["code"] == "invalid_input", path
    for call in (lambda: client.get(f"/models/m/versions/{BIG}"), lambda: client.get(f"/models/m/versions/{2**70}"),
                 lambda: client.get(f"/models/m/versions/{BIG}/artifacts/onnx"),
                 lambda: client.delete(f"/models/m/versions/{BIG}"),
                 lambda: client.put("/models/m/aliases/production", json={"version": BIG})):
        response = call()
        assert response.status_code == 404 and response.json()["code"] == "version_not_found"
    for version in (2**31 - 1, 2**31, BIG - 1):  # the largest the version column holds, and beyond
        assert client.get(f"/models/m/versions/{version}").status_code == 404
    assert client.get("/models/m").json()["aliases"] == {}


@pytest.mark.parametrize("name", ["prod\n", "prod\r\n", "\nprod"])
def test_a_name_with_a_newline_is_refused(client: TestClient, name: str) -> None:
    # (Form fields are stripped, as shells add newlines; JSON bodies and paths are taken as they are.)
    assert import_model(client, "m", affine_onnx()).status_code == 201
    response = client.put(f"/models/m/aliases/{name.replace(chr(10), '%0A').replace(chr(13), '%0D')}",
                          json={"version": 1})
    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert client.get("/models/m").json()["aliases"] == {}
    response = client.post("/datasets", json={"name": name, "builtin": "iris"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert client.get("/datasets").json()["total"] == 0


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.get("/models/nope"), 404, "model_not_found"),
        (lambda c: c.get("/models/nope/versions/1"), 404, "model_not_found"),
        (lambda c: c.get("/models/nope/versions/x"), 422, "invalid_input"),
        (lambda c: c.post("/models", json={"name": "x"}), 415, "unsupported_media_type"),
        (lambda c: c.post("/models", files={"file": ("m.onnx", b"x")}), 422, "invalid_input"),
        (lambda c: c.post("/models", data={"name": "x"}, files={"other": ("a", b"b")}), 422, "invalid_input"),
        (lambda c: import_model(c, "../etc", affine_onnx()), 422, "invalid_input"),
        (lambda c: import_model(c, "m", affine_onnx(), {"unknown": 1}), 422, "invalid_input"),
        (lambda c: import_model(c, "m", classifier_onnx(), {"classes": ["a", "a", "b"]}), 422, "invalid_input"),
        (lambda c: c.post("/models", files={"file": ("m.onnx", affine_onnx())},
                          data={"name": "m", "metadata": '{"metrics": {"acc": NaN}}'}), 400, "malformed_json"),
        (lambda c: c.post("/models", files={"file": ("m.onnx", affine_onnx())},
                          data={"name": "m", "metadata": '{"metrics": {"acc": "NaN"}}'}), 422, "invalid_input"),
        (lambda c: c.post("/models", files={"file": ("m.onnx", affine_onnx())},
                          data={"name": "m", "metadata": '{"metrics": {"acc": "inf"}}'}), 422, "invalid_input"),
        (lambda c: c.post("/models", files={"file": ("m.onnx", affine_onnx())},
                          data={"name": "m", "metadata": "{not json"}), 400, "malformed_json"),
        (lambda c: c.put("/models/m/aliases/prod", content=b"{", headers={"content-type": "application/json"}),
         400, "malformed_json"),
        (lambda c: c.put("/models/m/aliases/prod", json={"version": 1, "extra": 2}), 422, "invalid_input"),
        (lambda c: c.put("/models/m/aliases/prod", content=b"<x/>", headers={"content-type": "application/xml"}),
         415, "unsupported_media_type"),
        (lambda c: c.get("/no/such/route"), 404, "not_found"),
        (lambda c: c.delete("/models"), 405, "method_not_allowed"),
    ],
)
def test_errors_are_json_with_the_right_status(client: TestClient, call, status: int, code: str) -> None:
    response = call(client)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]


def test_oversized_body_is_413(make_client) -> None:
    small = make_client(max_request_mb=0.001, max_upload_mb=0.001)
    response = small.put("/models/m/aliases/prod", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    upload = import_model(small, "m", b"\0" * 5000)
    assert upload.status_code == 413


def test_a_models_own_batching_settings_are_stored_shown_and_served_with(client: TestClient) -> None:
    assert import_model(client, "affine", affine_onnx()).status_code == 201
    assert client.get("/models/affine").json()["serving"] == {}
    assert client.post("/predict", json={"model": "affine", "inputs": [[4, 4, 4, 4]]}).status_code == 200  # loaded
    response = client.put("/models/affine/serving", json={"max_batch_size": 256, "max_delay_ms": 2})
    assert response.status_code == 200, response.text
    assert response.json()["serving"] == {"max_batch_size": 256, "max_delay_ms": 2.0}
    assert client.get("/models").json()["items"][0]["serving"] == {"max_batch_size": 256, "max_delay_ms": 2.0}
    predicted = client.post("/predict", json={"model": "affine", "inputs": [[4, 4, 4, 4]]})
    assert predicted.status_code == 200 and predicted.json()["version"] == 1
    (loaded,) = client.app.state.services.engine.loaded()  # type: ignore[attr-defined]
    lease = client.app.state.services.engine._cache.acquire_loaded(loaded.key)  # type: ignore[attr-defined]
    assert lease.value.batching == (256, 2.0)  # the loaded model took them without a reload
    lease.release()
    assert client.put("/models/affine/serving", json={}).json()["serving"] == {}  # back to the server's


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"max_batch_size": 0}, 422, "invalid_input"),
        ({"max_batch_size": 100_000}, 422, "invalid_input"),
        ({"max_delay_ms": -1}, 422, "invalid_input"),
        ({"max_delay_ms": False}, 422, "invalid_input"),
        ({"max_batch_size": "32"}, 422, "invalid_input"),
        ({"max_batch_size": True}, 422, "invalid_input"),
        ({"batch": 8}, 422, "invalid_input"),
        ([1], 422, "invalid_input"),
    ],
)
def test_bad_serving_settings_are_refused_and_change_nothing(client: TestClient, body: object, status: int,
                                                             code: str) -> None:
    assert import_model(client, "affine", affine_onnx()).status_code == 201
    client.put("/models/affine/serving", json={"max_batch_size": 16})
    response = client.put("/models/affine/serving", json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert client.get("/models/affine").json()["serving"] == {"max_batch_size": 16}


def test_serving_settings_of_a_missing_model_are_a_404(client: TestClient) -> None:
    response = client.put("/models/nope/serving", json={"max_batch_size": 8})
    assert response.status_code == 404 and response.json()["code"] == "model_not_found"
