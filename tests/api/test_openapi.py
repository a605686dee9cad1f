"""The OpenAPI document tells the truth: every route with its methods, the bodies maas reads itself, the errors
in maas's (or V2's) shape, and the inference routes' models, which real requests and answers must fit; and a
405 names every method of its path."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.routing import Route

from maas.api.openapi import Error
from maas.api.routes import datasets, health, jobs, keys, models, predict, v2
from maas.api.schemas import answers
from maas.api.schemas.inference import (
    PredictRequest,
    PredictResponse,
    V2Error,
    V2IndexEntry,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
    V2ServerMetadata,
)
from tests.api.conftest import admin
from tests.factories import classifier_onnx, import_model

CLASSES = ["setosa", "versicolor", "virginica"]
JSON_BODIES = {
    ("post", "/train"): "TrainSpec", ("post", "/jobs"): "JobSubmit", ("post", "/keys"): "KeyCreate",
    ("put", "/models/{name}/serving"): "ServingUpdate", ("put", "/models/{name}/aliases/{alias}"): "AliasUpdate",
    ("post", "/predict"): "PredictRequest", ("post", "/models/{name}/predict"): "PredictRequest",
    ("post", "/v2/models/{name}/infer"): "V2InferRequest", ("post", "/v2/repository/index"): "V2IndexRequest",
}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def iris(client: TestClient) -> TestClient:
    import_model(client, "iris", classifier_onnx(), classes=CLASSES)
    return client


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_route_and_method_is_documented(document: dict[str, Any]) -> None:
    included = (r for module in (datasets, health, jobs, keys, models) for r in module.router.routes)
    routes = [*predict.routes, *v2.routes, *included]
    expected = {(method.lower(), route.path) for route in routes
                if isinstance(route, Route | APIRoute) and route.include_in_schema
                for method in route.methods or () if method != "HEAD"}
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == expected
    assert {("post", "/predict"), ("post", "/v2/models/{name}/versions/{version}/infer"),
            ("get", "/v2/health/ready"), ("post", "/v2/repository/models/{name}/load")} <= documented


def test_the_bodies_maas_reads_itself_are_documented(document: dict[str, Any]) -> None:
    for (method, path), model in JSON_BODIES.items():
        body = document["paths"][path][method]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
        assert model in document["components"]["schemas"]
    assert document["paths"]["/train"]["post"]["requestBody"]["required"] is True
    assert document["paths"]["/v2/repository/index"]["post"]["requestBody"]["required"] is False
    uploads = {path: document["paths"][path]["post"]["requestBody"]["content"] for path in ("/datasets", "/models")}
    assert uploads["/datasets"]["multipart/form-data"]["schema"]["required"] == ["file", "name"]
    assert uploads["/datasets"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DatasetCreate"}
    assert uploads["/models"]["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert "Inference-Header-Content-Length" in infer["responses"]["200"]["headers"]


def test_errors_are_documented_in_the_shape_they_are_sent(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Error"]["required"]) == {"error", "code"}
    for method, path, op in operations(document):
        shape = "V2Error" if path.startswith("/v2") else "Error"
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")) or path in ("/readyz", "/v2/health/ready") or path.endswith("/ready"):
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path, status)
    predict = document["paths"]["/predict"]["post"]["responses"]
    assert {"400", "404", "413", "415", "422", "503", "504"} <= set(predict)
    assert "Retry-After" in predict["503"]["headers"]


def test_json_answers_are_documented_as_json(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert schema != {"type": "string"}, (method, path, status)  # what FastAPI wrote for our JSONResponse
    assert document["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"}
    assert "text/event-stream" in document["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert "image/png" in document["paths"]["/jobs/{job_id}/curves.png"]["get"]["responses"]["200"]["content"]


def test_paging_and_filters_are_documented_with_their_bounds(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/jobs"]["get"]["parameters"]}
    assert parameters["offset"]["minimum"] == 0 and parameters["limit"]["minimum"] == 1
    assert "running" in parameters["status"]["enum"] and "train" in parameters["kind"]["enum"]


def fits(model: type[BaseModel], document: Any) -> None:
    model.model_validate(document)


def test_real_inference_requests_and_answers_fit_the_documented_models(iris: TestClient) -> None:
    body = {"model": "iris", "inputs": [[0, 0, 1, 1], [1, 1, 0, 0]]}
    fits(PredictRequest, body)
    answer = iris.post("/predict", content=orjson.dumps(body))
    assert answer.status_code == 200
    fits(PredictResponse, answer.json())
    fits(Error, iris.post("/predict", json={"model": "ghost", "inputs": [[1]]}).json())

    v2 = {"id": "1", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 1, 1]}],
          "outputs": [{"name": "label"}]}
    fits(V2InferRequest, v2)
    infer = iris.post("/v2/models/iris/infer", content=orjson.dumps(v2))
    assert infer.status_code == 200
    fits(V2InferResponse, infer.json())
    fits(V2Error, iris.post("/v2/models/ghost/infer", content=orjson.dumps(v2)).json())
    fits(V2ServerMetadata, iris.get("/v2").json())
    fits(V2ModelMetadata, iris.get("/v2/models/iris").json())
    fits(V2ModelReady, iris.get("/v2/models/iris/ready").json())
    for entry in iris.post("/v2/repository/index").json():
        fits(V2IndexEntry, entry)


def test_real_registry_job_and_key_answers_fit_the_documented_models(iris: TestClient, secured: TestClient) -> None:
    fits(answers.Health, iris.get("/healthz").json())
    fits(answers.Readiness, iris.get("/readyz").json())
    fits(answers.DatasetOut, iris.post("/datasets", json={"name": "flowers", "builtin": "iris"}).json())
    fits(answers.DatasetList, iris.get("/datasets").json())
    fits(answers.ModelList, iris.get("/models").json())
    fits(answers.ModelOut, iris.get("/models/iris").json())
    fits(answers.ModelOut, iris.put("/models/iris/serving", json={"max_batch_size": 8}).json())
    fits(answers.VersionList, iris.get("/models/iris/versions").json())
    fits(answers.VersionOut, iris.get("/models/iris/versions/1").json())
    fits(answers.VersionOut, iris.put("/models/iris/aliases/production", json={"version": 1}).json())
    queued = iris.post("/train", json={"dataset": "flowers", "hyperparameters": {"epochs": 1}})
    assert queued.status_code == 202
    fits(answers.JobQueued, queued.json())
    fits(answers.JobList, iris.get("/jobs").json())
    fits(answers.JobOut, iris.get(f"/jobs/{queued.json()['job_id']}").json())
    fits(answers.JobOut, iris.post(f"/jobs/{queued.json()['job_id']}/cancel").json())
    created = secured.post("/keys", json={"tenant": "acme", "scopes": ["read"], "name": "k"}, headers=admin())
    fits(answers.KeyCreated, created.json())
    fits(answers.KeyList, secured.get("/keys", headers=admin()).json())
    fits(answers.AuditLog, secured.get("/audit", headers=admin()).json())
    fits(answers.KeyOut, secured.delete(f"/keys/{created.json()['id']}", headers=admin()).json())


def test_binary_infer_answers_fit_the_documented_header(iris: TestClient) -> None:
    header = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 16}}],
                           "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]})
    fits(V2InferRequest, orjson.loads(header))
    response = iris.post("/v2/models/iris/infer", content=header + np.ones((1, 4), np.float32).tobytes(),
                         headers={"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    fits(V2InferResponse, orjson.loads(response.content[:length]))


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/models/m/aliases/production", "DELETE, PUT"),
    ("DELETE", "/datasets", "GET, POST"),
    ("PUT", "/models/m/versions/1", "DELETE, GET"),
    ("POST", "/v2/models/m", "GET, HEAD"),  # a raw (Starlette) route answers HEAD too
    ("GET", "/predict", "POST"),
])
def test_a_405_names_every_method_of_its_path(client: TestClient, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["code"] == "method_not_allowed"
