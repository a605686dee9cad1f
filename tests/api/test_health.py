from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import affine_onnx


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "migrations": True}


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.post("/models", files={"file": ("m.onnx", affine_onnx())}, data={"name": "m"})
    client.get("/models/m")
    client.get("/models/missing")
    text = client.get("/metrics").text
    assert 'maas_http_requests_total{method="GET",route="/models/{name}",status="200"} 1.0' in text
    assert 'maas_http_requests_total{method="GET",route="/models/{name}",status="404"} 1.0' in text
    assert "maas_http_request_duration_seconds_bucket" in text
    assert 'maas_registry_models{kind="all"} 1.0' in text


def test_head_answers_like_get_without_changing_anything(client: TestClient) -> None:
    assert client.post("/models", files={"file": ("m.onnx", affine_onnx())}, data={"name": "m"}).status_code == 201
    for path in ("/healthz", "/readyz", "/models", "/models/m", "/metrics", "/v2/health/ready"):
        head, get = client.head(path), client.get(path)
        assert head.status_code == get.status_code == 200, path
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert client.head("/models/missing").status_code == 404
    assert client.head("/predict").status_code == 405  # POST only
    text = client.get("/metrics").text
    assert 'maas_http_requests_total{method="HEAD",route="/models/{name}",status="200"} 1.0' in text
