"""``POST /predict`` through the real app: input formats, version and variant choice, auth, every error path,
back-pressure, and an alias moving under concurrent traffic without a single failed request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from maas.app import create_app
from maas.bootstrap import build_services
from maas.config import Settings
from maas.inference.backends import build_backend
from maas.inference.backends.base import Backend
from maas.inference.engine import InferenceEngine
from maas.inference.servable import ServableArtifact, ServableVersion
from maas.registry.serving import RegistryResolver
from tests.api.conftest import admin, new_key
from tests.factories import GatedBackend, affine_onnx, classifier_onnx, import_model

FOURS = [[4, 4, 4, 4]]
NAMES = ["w", "x", "y", "z"]
BODY = {"model": "affine", "inputs": FOURS}


def predict(client: TestClient, body: Any, path: str = "/predict", **kwargs: Any) -> Any:
    return client.post(path, content=orjson.dumps(body), **kwargs)


@pytest.fixture
def affine(client: TestClient) -> TestClient:
    """Model "affine": y = 2x + 1 elementwise (4 -> 9), a regression."""
    import_model(client, "affine", affine_onnx(), task="regression")
    return client


@pytest.fixture
def iris(client: TestClient) -> TestClient:
    """Model "iris": the class of the largest feature group (i % 3), with named features."""
    import_model(client, "iris", classifier_onnx(), classes=["setosa", "versicolor", "virginica"],
                 feature_names=NAMES)
    return client


# --- input formats -------------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs", [FOURS, FOURS[0], [[4, 4, 4, 4], [4, 4, 4, 4]], [["4", "4", "4", "4"]]])
def test_rows_a_single_row_and_numeric_strings_are_accepted(affine: TestClient, inputs: Any) -> None:
    response = predict(affine, {"model": "affine", "inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["variant"]) == ("affine", 1, "onnx")
    assert body["predictions"] == [[9.0] * 4] * (2 if len(inputs) == 2 else 1)
    assert "probabilities" not in body


def test_classifiers_answer_their_own_labels_and_probabilities(iris: TestClient) -> None:
    body = predict(iris, {"model": "iris", "inputs": [[0, 5, 0, 0], [0, 0, 5, 0], [9, 0, 0, 0]]}).json()
    assert body["predictions"] == ["versicolor", "virginica", "setosa"]
    assert np.asarray(body["probabilities"]).shape == (3, 3)
    assert np.allclose(np.asarray(body["probabilities"]).sum(axis=1), 1.0)


def test_rows_keyed_by_feature_name_in_any_order(iris: TestClient) -> None:
    rows = [{"z": 0, "y": 5, "x": 0, "w": 0}, {"x": 5, "w": 0, "y": 0, "z": 0}]
    assert predict(iris, {"model": "iris", "inputs": rows}).json()["predictions"] == ["virginica", "versicolor"]
    single = predict(iris, {"model": "iris", "inputs": {"w": 0, "x": 0, "y": 0, "z": 7}})
    assert single.json()["predictions"] == ["setosa"]
    missing = predict(iris, {"model": "iris", "inputs": [{"w": 1, "x": 2}]})
    assert missing.status_code == 422 and '"y"' in missing.json()["error"]


def test_the_model_may_come_from_the_path(iris: TestClient) -> None:
    response = predict(iris, {"inputs": [[0, 5, 0, 0]]}, path="/models/iris/predict")
    assert response.status_code == 200 and response.json()["predictions"] == ["versicolor"]
    assert predict(iris, {"inputs": [[0, 5, 0, 0]]}, path="/models/nope/predict").status_code == 404
    metrics = iris.get("/metrics").text
    assert 'route="/models/{name}/predict"' in metrics and 'route="/predict"' not in metrics


# --- versions and variants -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["\u00b9", "\u0663"])  # superscript one, Arabic-Indic three
def test_a_version_of_non_ascii_digits_is_an_unknown_alias(affine: TestClient, version: str) -> None:
    # str.isdigit() holds for both; int("¹") fails (found by schemathesis as a 500), int("٣") would read 3.
    response = predict(affine, {**BODY, "version": version})
    assert response.status_code == 404 and response.json()["code"] == "alias_not_found", response.text


def test_versions_by_number_alias_and_default(client: TestClient) -> None:
    import_model(client, "m", affine_onnx(), task="regression")  # 4 -> 9
    import_model(client, "m", affine_onnx(weight=3.0, bias=0.0), task="regression")  # 4 -> 12
    assert predict(client, {"model": "m", "inputs": FOURS}).json()["version"] == 2  # latest
    assert client.put("/models/m/aliases/production", json={"version": 1}).status_code == 200
    default = predict(client, {"model": "m", "inputs": FOURS}).json()
    assert (default["version"], default["predictions"]) == (1, [[9.0] * 4])  # production beats latest
    by_number = predict(client, {"model": "m", "version": 2, "inputs": FOURS}).json()
    assert (by_number["version"], by_number["predictions"]) == (2, [[12.0] * 4])
    assert predict(client, {"model": "m", "version": "2", "inputs": FOURS}).json()["version"] == 2
    client.put("/models/m/aliases/staging", json={"version": 2})
    assert predict(client, {"model": "m", "version": "staging", "inputs": FOURS}).json()["version"] == 2
    assert predict(client, {"model": "m", "version": 7, "inputs": FOURS}).status_code == 404
    unknown_alias = predict(client, {"model": "m", "version": "canary", "inputs": FOURS})
    assert (unknown_alias.status_code, unknown_alias.json()["code"]) == (404, "alias_not_found")
    assert predict(client, {"model": "m", "version": 1.5, "inputs": FOURS}).status_code == 422


def test_a_variant_picks_the_artifact(affine: TestClient) -> None:
    assert predict(affine, {"model": "affine", "variant": "onnx", "inputs": FOURS}).json()["variant"] == "onnx"
    missing = predict(affine, {"model": "affine", "variant": "onnx-int8", "inputs": FOURS})
    assert (missing.status_code, missing.json()["code"]) == (404, "artifact_not_found")
    assert "onnx" in missing.json()["error"]
    assert predict(affine, {"model": "affine", "variant": 3, "inputs": FOURS}).status_code == 422


# --- auth ----------------------------------------------------------------------------------------------
def test_tenants_are_isolated_and_the_predict_scope_is_needed(secured: TestClient) -> None:
    acme = new_key(secured, "acme", ["manage"])
    globex = new_key(secured, "globex", ["predict"])
    reader = new_key(secured, "acme", ["read"])
    import_model(secured, "affine", affine_onnx(), headers=acme, task="regression")
    assert predict(secured, {"model": "affine", "inputs": FOURS}, headers=acme).status_code == 200
    other = predict(secured, {"model": "affine", "inputs": FOURS}, headers=globex)
    assert (other.status_code, other.json()["code"]) == (404, "model_not_found")
    forbidden = predict(secured, {"model": "affine", "inputs": FOURS}, headers=reader)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    assert predict(secured, {"model": "affine", "inputs": FOURS}).status_code == 401
    bad = predict(secured, {"model": "affine", "inputs": FOURS}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert predict(secured, {"model": "affine", "inputs": FOURS}, headers=admin()).status_code == 404  # other tenant


# --- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b'{"model": "affine", "inputs": [[1, NaN, 3, 4]]}', 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_input"),
        (b'{"inputs": [[1, 2, 3, 4]]}', 422, "invalid_input"),
        (b'{"model": "affine"}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": []}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": [[1, 2, 3]]}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": [[1, 2, 3, 4], [1, 2]]}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": [[1, 2, "x", 4]]}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": [[1, 2, 1e39, 4]]}', 422, "invalid_input"),
        (b'{"model": "affine", "inputs": [[1, 2, null, 4]]}', 422, "invalid_input"),
        (b'{"model": "ghost", "inputs": [[1, 2, 3, 4]]}', 404, "model_not_found"),
    ],
)
def test_bad_requests_get_our_error_shape(affine: TestClient, body: bytes, status: int, code: str) -> None:
    response = affine.post("/predict", content=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code and isinstance(error["error"], str) and error["error"].endswith(".")


def test_a_bug_in_the_hot_path_is_a_json_500_and_is_counted(affine: TestClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The raw endpoints bypass FastAPI's exception handlers: our front door answers their bugs instead."""
    import maas.api.routes.predict as route

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(route, "decode_rows", broken)
    response = predict(affine, {"model": "affine", "inputs": FOURS})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error.", "code": "internal_error"}
    assert response.headers["x-request-id"]
    assert 'maas_http_requests_total{method="POST",route="/predict",status="500"} 1.0' in affine.get("/metrics").text


def test_a_bug_while_answering_a_landed_batch_is_a_json_500(affine: TestClient,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer is written from the batcher's callback (``inference_route._landed``): its bugs get JSON too."""
    from maas.inference.engine import InferenceEngine

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    assert predict(affine, {"model": "affine", "inputs": FOURS}).status_code == 200  # loaded: no awaited handler
    monkeypatch.setattr(InferenceEngine, "postprocess", staticmethod(broken))
    response = predict(affine, {"model": "affine", "inputs": FOURS})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error.", "code": "internal_error"}
    assert response.headers["x-request-id"]


def test_the_first_bad_value_is_named(affine: TestClient) -> None:
    error = predict(affine, {"model": "affine", "inputs": [[1, 2, 3, 4], [1, 2, 3]]}).json()
    assert error["error"] == "inputs[1] has 3 values; the model takes 4."


def test_content_type_and_size_limits(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_request_mb=0.01)
    import_model(client, "affine", affine_onnx(), task="regression")
    body = orjson.dumps({"model": "affine", "inputs": [[1.0, 2.0, 3.0, 4.0]] * 1000})
    too_large = client.post("/predict", content=body)
    assert (too_large.status_code, too_large.json()["code"]) == (413, "payload_too_large")
    xml = client.post("/predict", content=b"<x/>", headers={"Content-Type": "application/xml"})
    assert (xml.status_code, xml.json()["code"]) == (415, "unsupported_media_type")
    form = client.post("/predict", content=orjson.dumps({"model": "affine", "inputs": FOURS}),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # curl -d
    assert form.status_code == 200
    assert client.get("/predict").status_code == 405


def test_a_streamed_body_over_the_limit_is_a_413_and_keeps_the_request_id(
    make_client: Callable[..., TestClient],
) -> None:
    """No Content-Length to refuse up front: the hot path counts the chunks as they arrive."""
    client = make_client(max_request_mb=0.01)  # ~10 kB
    chunks = [b"[" + b"1.0," * 1500, b"1.0," * 1500, b"1.0]"]

    async def call() -> list[dict[str, Any]]:
        messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                    for i, chunk in enumerate(chunks)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"req-42")],
                 "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
        await client.app(scope, receive, send)  # type: ignore[operator]
        return sent

    assert client.portal is not None
    start, body = client.portal.call(call)
    assert start["status"] == 413 and (b"x-request-id", b"req-42") in start["headers"]
    assert orjson.loads(body["body"])["code"] == "payload_too_large"


def test_metrics_count_predictions_by_model_and_status(affine: TestClient) -> None:
    for inputs in (FOURS, FOURS, [[1]]):
        predict(affine, {"model": "affine", "inputs": inputs})
    predict(affine, {"model": "ghost", "inputs": FOURS})
    metrics = affine.get("/metrics").text
    assert 'maas_inference_requests_total{model="affine",status="200",version="1"} 2.0' in metrics
    assert 'maas_inference_requests_total{model="affine",status="422",version="1"} 1.0' in metrics
    assert 'maas_inference_request_duration_seconds_count{model="affine",status="200",version="1"} 2.0' in metrics
    assert 'maas_inference_request_duration_seconds_count{model="affine",status="422",version="1"} 1.0' in metrics
    assert 'maas_queue_depth{model="affine",version="1"} 0.0' in metrics
    assert 'maas_inference_errors_total{code="model_not_found",model="-"} 1.0' in metrics
    assert 'maas_batch_size_count{model="affine",version="1"}' in metrics
    assert "maas_model_cache_models 1.0" in metrics
    assert 'maas_http_requests_total{method="POST",route="/predict",status="200"} 2.0' in metrics


# --- back-pressure: a model held busy by a gate --------------------------------------------------------
@pytest.fixture
def gated(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, threading.Event, threading.Event]]:
    """An app whose models are gated (open by default), with a queue of one and a 1.5 s deadline."""
    gate, entered = threading.Event(), threading.Event()
    gate.set()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, workers=0, max_queue=1,
                        max_batch_size=1, request_timeout_s=1.5, inline_batch_us=0)
    services = build_services(settings)

    def factory(servable: ServableVersion, artifact: ServableArtifact, s: Settings) -> Backend:
        return GatedBackend(build_backend(servable, artifact, s), gate, entered)

    services.engine = InferenceEngine(settings, RegistryResolver(services.registry), services.inference_metrics,
                                      backend_factory=factory)
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as client:
        import_model(client, "affine", affine_onnx(), task="regression")
        assert predict(client, {"model": "affine", "inputs": FOURS}).status_code == 200  # loaded, warm
        yield client, gate, entered
        gate.set()


@contextmanager
def model_held(gated: tuple[TestClient, threading.Event, threading.Event],
               pool: ThreadPoolExecutor) -> Iterator[Future[Any]]:
    """One request takes the model and waits at the closed gate; the gate opens when the block ends."""
    client, gate, entered = gated
    gate.clear()
    entered.clear()
    running = pool.submit(predict, client, BODY)
    assert entered.wait(5)
    try:
        yield running
    finally:
        gate.set()


def test_a_full_queue_answers_503_with_retry_after(gated: tuple[TestClient, threading.Event, threading.Event]) -> None:
    client, body = gated[0], BODY
    with ThreadPoolExecutor(2) as pool:
        with model_held(gated, pool) as running:
            queued = pool.submit(predict, client, body)  # fills the queue of one
            time.sleep(0.3)
            rejected = predict(client, body)
        assert running.result().status_code == 200 and queued.result().status_code == 200
    assert (rejected.status_code, rejected.json()["code"]) == (503, "overloaded")
    assert int(rejected.headers["Retry-After"]) >= 1
    assert 'code="overloaded"' in client.get("/metrics").text


def test_a_missed_deadline_is_a_504(gated: tuple[TestClient, threading.Event, threading.Event]) -> None:
    client, gate, _entered = gated
    gate.clear()
    response = predict(client, {"model": "affine", "inputs": FOURS})
    gate.set()
    assert (response.status_code, response.json()["code"]) == (504, "deadline_exceeded")


def hang_up_while_queued(client: TestClient, body: bytes, after_s: float) -> list[dict[str, Any]]:
    """Send ``POST /predict`` straight to the ASGI app, then disconnect after ``after_s``; what the app sent."""
    app = client.app

    async def call() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()
        loop.call_later(after_s, gone.set)
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {}}
        await asyncio.wait_for(app(scope, receive, send), 5)  # type: ignore[operator]
        return sent

    assert client.portal is not None
    return client.portal.call(call)


def test_a_client_that_hangs_up_leaves_the_queue(gated: tuple[TestClient, threading.Event, threading.Event]) -> None:
    client, body = gated[0], BODY
    with ThreadPoolExecutor(2) as pool:
        with model_held(gated, pool) as running:
            sent = hang_up_while_queued(client, orjson.dumps(body), after_s=0.3)  # takes the queue, then leaves
            assert sent == []  # nothing is answered to a client that is gone
            queued = pool.submit(predict, client, body)  # its place is free again: queued, not refused with a 503
            time.sleep(0.2)
        assert running.result().status_code == 200 and queued.result().status_code == 200
    assert 'maas_http_requests_total{method="POST",route="/predict",status="499"} 1.0' in client.get("/metrics").text


# --- promotion under load ------------------------------------------------------------------------------
def test_moving_an_alias_under_concurrent_traffic_fails_no_request(client: TestClient) -> None:
    import_model(client, "m", affine_onnx(), task="regression")  # v1: 4 -> 9
    import_model(client, "m", affine_onnx(weight=3.0, bias=0.0), task="regression")  # v2: 4 -> 12
    assert client.put("/models/m/aliases/production", json={"version": 1}).status_code == 200
    expected = {1: [[9.0] * 4], 2: [[12.0] * 4]}
    stop = threading.Event()

    def hammer() -> list[tuple[int, Any]]:
        seen = []
        while not stop.is_set():
            response = predict(client, {"model": "m", "inputs": FOURS})
            body = response.json()
            seen.append((response.status_code, body))
        return seen

    with ThreadPoolExecutor(6) as pool:
        workers = [pool.submit(hammer) for _ in range(6)]
        for version in (2, 1, 2, 1, 2):
            time.sleep(0.15)
            assert client.put("/models/m/aliases/production", json={"version": version}).status_code == 200
        time.sleep(0.15)
        stop.set()
        results = [item for worker in workers for item in worker.result()]
    assert len(results) > 50
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:3]
    assert all(body["predictions"] == expected[body["version"]] for _, body in results)
    assert {body["version"] for _, body in results} == {1, 2}
    assert predict(client, {"model": "m", "inputs": FOURS}).json()["version"] == 2  # the last move took effect
