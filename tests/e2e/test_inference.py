"""Serving against a real ``maas serve``: tritonclient's HTTP client unchanged (JSON and binary tensors) agrees
with ``/predict``, concurrent traffic is batched, and ``/metrics`` shows it."""

from __future__ import annotations

import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np
import pytest
import tritonclient.http as triton

from tests.e2e.conftest import Server
from tests.factories import affine_onnx, classifier_onnx, import_model

pytestmark = pytest.mark.e2e

CLASSES = [f"digit-{i}" for i in range(10)]


def test_tritonclient_works_unchanged_and_agrees_with_predict(server: Server) -> None:
    with server.client() as http:
        import_model(http, "digits", classifier_onnx(n_in=64, n_classes=10), classes=CLASSES)
        import_model(http, "affine", affine_onnx(), task="regression")
        x = np.random.default_rng(0).uniform(0, 16, size=(5, 64)).astype(np.float32)
        predicted = http.post("/predict", json={"model": "digits", "inputs": x.tolist()}).json()

    client = triton.InferenceServerClient(url=urlparse(server.url).netloc)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        assert client.is_model_ready("digits")
        meta = client.get_model_metadata("digits")
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        for binary in (False, True):
            tensor = triton.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")]
            result = client.infer("digits", [tensor], outputs=outputs)
            labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
            assert labels == predicted["predictions"]
            np.testing.assert_allclose(result.as_numpy("probabilities"), predicted["probabilities"], rtol=1e-6)
        four = triton.InferInput("input", [1, 4], "FP32")
        four.set_data_from_numpy(np.full((1, 4), 4, dtype=np.float32), binary_data=True)
        assert client.infer("affine", [four], model_version="1").as_numpy("output").tolist() == [[9.0] * 4]
        with pytest.raises(triton.InferenceServerException, match="No model named"):
            client.infer("ghost", [four])
    finally:
        client.close()


def test_concurrent_predictions_are_batched_and_counted(server: Server) -> None:
    with server.client() as http:
        import_model(http, "affine", affine_onnx(), task="regression")
        body = {"model": "affine", "inputs": [[4, 4, 4, 4]]}

        def call(_: int) -> int:
            return http.post("/predict", json=body).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(call, range(400)))
        assert statuses == [200] * 400
        http.post("/predict", json={"model": "affine", "inputs": [[1, 2]]})
        metrics = http.get("/metrics").text
    assert 'maas_inference_requests_total{model="affine",status="200",version="1"} 400.0' in metrics
    assert 'maas_inference_errors_total{code="invalid_input",model="affine"} 1.0' in metrics
    assert 'maas_http_requests_total{method="POST",route="/predict",status="200"} 400.0' in metrics
    batches = float(re.search(r'maas_batch_size_count\{model="affine",version="1"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    rows = float(re.search(r'maas_batch_size_sum\{model="affine",version="1"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    assert rows == 400 and 1 <= batches <= 400
    assert "maas_model_cache_models 1.0" in metrics and 'maas_model_load_seconds_count{model="affine"' in metrics


def test_sigterm_lets_predictions_in_flight_finish(server: Server) -> None:
    """Graceful shutdown: requests already in the server are answered, then it exits cleanly."""
    with server.client() as http:
        import_model(http, "affine", affine_onnx(), task="regression")
        # Every batch waits up to 1 s for company, so the requests below are still queued at the signal.
        assert http.put("/models/affine/serving", json={"max_batch_size": 64, "max_delay_ms": 1000}).status_code == 200
        assert http.post("/predict", json={"model": "affine", "inputs": [[1, 1, 1, 1]]}).status_code == 200  # loaded
    body = b'{"model": "affine", "inputs": [[4, 4, 4, 4]]}'
    request = (b"POST /predict HTTP/1.1\r\nHost: maas\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    host, port = urlparse(server.url).hostname, urlparse(server.url).port
    clients = [socket.create_connection((host, port), timeout=30) for _ in range(8)]
    try:
        for client in clients:
            client.sendall(request)  # whole requests in the server's socket buffers before the signal
        time.sleep(0.3)  # ...and read by its idle event loop: they wait in the model's queue now
        server.process.send_signal(signal.SIGTERM)
        answers = [_read_answer(client) for client in clients]
    finally:
        for client in clients:
            client.close()
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), answers
    assert all(answer.endswith(b'"predictions":[[9.0,9.0,9.0,9.0]]}') for answer in answers), answers
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status says SIGTERM.
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log.read_text()


def _read_answer(client: socket.socket) -> bytes:
    """One whole HTTP answer (the server closes the connection after it, as it is shutting down)."""
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
