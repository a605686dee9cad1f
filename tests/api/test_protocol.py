"""``HotPathProtocol`` on a real uvicorn server (in a thread), spoken to over raw sockets.

Hot requests are answered beneath ASGI (counted through ``HotPath.start`` and ``HotPath.answer``); everything the
protocol leaves to uvicorn's ASGI path gets the same answers; keep-alive, pipelining, limits and hang-ups behave as
HTTP/1.1 asks.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from maas.api.hotpath import HotPath
from maas.api.protocol import HotPathProtocol
from maas.app import create_app
from maas.bootstrap import build_services
from maas.cli.main import _http_protocol
from maas.config import Settings
from maas.inference.backends import build_backend
from maas.inference.backends.base import Backend
from maas.inference.engine import InferenceEngine
from maas.inference.servable import ServableArtifact, ServableVersion
from maas.registry.serving import RegistryResolver
from tests.e2e.conftest import free_port
from tests.factories import GatedBackend, affine_onnx, import_model

BODY = b'{"model": "affine", "inputs": [[4, 4, 4, 4]]}'
NINES = b'"predictions":[[9.0,9.0,9.0,9.0]]}'
LIMIT_MB = 0.01  # ~10 kB
KEEP_ALIVE_S = 1.0  # the served fixture's keep-alive timeout (uvicorn's default is 5 s)


def _open() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class Served:
    url: str
    port: int
    hot: list[str] = field(default_factory=list)  # the paths HotPath served, in order
    in_tasks: list[str] = field(default_factory=list)  # those of them it answered in a task (HotPath.answer)
    gate: threading.Event = field(default_factory=_open)
    entered: threading.Event = field(default_factory=threading.Event)  # set by a model call at the gate

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics").text


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    """A server with the affine model imported; its model calls wait at ``Served.gate`` while that is closed."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, workers=0, max_request_mb=LIMIT_MB,
                        inline_batch_us=0)
    services = build_services(settings)
    result = Served(url="", port=free_port())
    result.url = f"http://127.0.0.1:{result.port}"

    def gated(servable: ServableVersion, artifact: ServableArtifact, s: Settings) -> Backend:
        return GatedBackend(build_backend(servable, artifact, s), result.gate, result.entered)

    services.engine = InferenceEngine(settings, RegistryResolver(services.registry), services.inference_metrics,
                                      backend_factory=gated, resolve_ttl_s=3600)  # a slow test must not re-resolve
    app = create_app(settings, services)
    hot_path = app.hot_path
    assert hot_path is not None
    _count_hot_answers(hot_path, result.hot, result.in_tasks)
    config = uvicorn.Config(app, host="127.0.0.1", port=result.port, http=HotPathProtocol.serving(app),
                            log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            timeout_keep_alive=KEEP_ALIVE_S)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _until(lambda: server.started, "the server to start")
    with httpx.Client(base_url=result.url, timeout=30) as http:
        import_model(http, "affine", affine_onnx(), task="regression")
    try:
        yield result
    finally:
        result.gate.set()
        server.should_exit = True
        thread.join(30)


def _count_hot_answers(hot_path: HotPath, paths: list[str], tasks: list[str]) -> None:
    """Record the paths the hot path served (``start``, or ``answer`` in a task), and those it awaited."""
    answer, start = hot_path.answer, hot_path.start

    async def counted(route: Any, scope: Any, headers: dict[bytes, bytes], body: bytes) -> Any:
        paths.append(scope["path"])
        tasks.append(scope["path"])
        return await answer(route, scope, headers, body)

    def counted_start(route: Any, scope: Any, headers: dict[bytes, bytes], body: bytes, reply: Any) -> Any:
        exchange = start(route, scope, headers, body, reply)
        if exchange is not None:
            paths.append(scope["path"])
        return exchange

    hot_path.answer = counted  # type: ignore[method-assign]
    hot_path.start = counted_start  # type: ignore[method-assign]


def _until(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def post(path: str, body: bytes = BODY, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: maas", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: maas\r\n\r\n".encode()


class Reader:
    """Reads HTTP/1.1 answers, one after another, off a socket (interim 1xx answers included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise AssertionError(f"connection closed mid-answer: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise AssertionError("connection closed mid-body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed(self) -> bool:
        """Whether the server closed the connection (after every answer has been read)."""
        return not self.buffer and not self._fill()


def test_predictions_are_answered_beneath_asgi_on_a_kept_alive_connection(served: Served) -> None:
    v2 = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [4, 4, 4, 4]}]})
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(post("/predict", BODY, "X-Request-ID: given-id"))
        first = reader.answer()
        sock.sendall(get("/healthz"))
        health = reader.answer()
        sock.sendall(post("/models/affine/predict", b'{"inputs": [[4, 4, 4, 4]]}'))
        by_path = reader.answer()
        sock.sendall(post("/v2/models/affine/infer", v2.encode()))
        infer = reader.answer()
        sock.sendall(post("/predict", b'{"model": "affine", "inputs": [[1, 2]]}'))
        invalid = reader.answer()
    assert first.status == 200 and first.body.endswith(NINES)
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-request-id"] == "given-id" and "date" in first.headers
    assert "connection" not in first.headers  # kept alive
    assert health.status == 200
    assert by_path.status == 200 and by_path.body.endswith(NINES)
    assert infer.status == 200 and json.loads(infer.body)["outputs"][0]["data"] == [9.0] * 4
    assert invalid.status == 422 and json.loads(invalid.body)["code"] == "invalid_input"
    assert re.fullmatch(r"[0-9a-f]{16,}", invalid.headers["x-request-id"])
    assert served.hot == ["/predict", "/models/affine/predict", "/v2/models/affine/infer", "/predict"]
    assert served.in_tasks == ["/predict"]  # the first resolved the version; the rest had no task
    metrics = served.metrics()
    assert 'maas_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics
    assert 'maas_http_requests_total{method="POST",route="/predict",status="422"} 1.0' in metrics
    assert 'maas_inference_requests_total{model="affine",status="200",version="1"} 3.0' in metrics


def test_a_kept_alive_connection_closes_only_after_a_whole_timeout_without_a_request(served: Served) -> None:
    # The protocol arms a connection's keep-alive timer once and keeps it across requests (uvicorn re-arms it
    # after every answer): requests that keep coming, each within the timeout of the last answer, keep the
    # connection open for longer than one timeout in all; an idle spell of a whole timeout ends it.
    with served.connect() as sock:
        reader = Reader(sock)
        started = time.monotonic()
        answers = []
        while True:
            sock.sendall(post("/predict"))
            answers.append(reader.answer().status)
            sock.sendall(get("/healthz"))  # uvicorn's ASGI path shares the timer
            answers.append(reader.answer().status)
            idle_since = time.monotonic()
            if idle_since - started > 2.5 * KEEP_ALIVE_S:
                break
            time.sleep(KEEP_ALIVE_S / 3)
        assert set(answers) == {200} and len(answers) >= 8
        assert reader.closed()  # recv waits until the server closes (the socket's own timeout is 10 s)
        assert time.monotonic() - idle_since >= KEEP_ALIVE_S * 0.9


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(post("/predict", b'{"model": "affine", "inputs": [[1, 1, 1, 1]]}') + get("/healthz")
                     + post("/predict", b'{"model": "affine", "inputs": [[2, 2, 2, 2]]}') + post("/predict", b"{nope")
                     + post("/predict", BODY))
        answers = [reader.answer() for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 400, 200]
    assert answers[0].body.endswith(b"[[3.0,3.0,3.0,3.0]]}")
    assert json.loads(answers[1].body)["status"] == "ok"
    assert answers[2].body.endswith(b"[[5.0,5.0,5.0,5.0]]}")
    assert json.loads(answers[3].body)["code"] == "malformed_json"
    assert answers[4].body.endswith(NINES)
    assert served.hot[:1] == ["/predict"]  # the rest waited behind it: uvicorn's pipeline answered them


@pytest.mark.parametrize("request_bytes", [
    post("/predict", b"2d\r\n" + BODY + b"\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
    post("/predict", BODY, "Expect: 100-continue"),
    post("/predict?pretty=1", BODY),
    post("/pre%64ict", BODY),
], ids=["chunked", "expect-100-continue", "query-string", "escaped-path"])
def test_requests_left_to_asgi_get_the_same_answer(served: Served, request_bytes: bytes) -> None:
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes)
        answer = reader.answer()
        if answer.status == 100:
            answer = reader.answer()
        sock.sendall(post("/predict"))  # the connection stays usable, and the hot path takes this one
        after = reader.answer()
    assert answer.status == 200 and answer.body.endswith(NINES), answer
    assert after.status == 200 and after.body.endswith(NINES)
    assert served.hot == ["/predict"]


def test_a_client_that_pipelines_then_half_closes_logs_no_error(served: Served,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # uvicorn closes the connection on the client's EOF and marks only its latest cycle disconnected; the answer
    # of the request ahead of it was then written to a closed transport (uvloop raised: a logged 500 each time).
    served.gate.clear()
    with served.connect() as sock:
        sock.sendall(post("/pre%64ict") + post("/pre%64ict"))  # both left to uvicorn; the first waits at the gate
        _until(lambda: served.entered.is_set(), "the first request to reach the model")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # uvicorn does not answer a half-closed connection
    served.gate.set()
    with httpx.Client(base_url=served.url, timeout=30) as http:
        _until(lambda: 'route="/predict",status="200"} 1.0' in served.metrics()
               or "unhandled error" in caplog.text, "the first request to finish")
        assert http.post("/predict", content=BODY).status_code == 200
    assert "unhandled error" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(served: Served) -> None:
    for request_bytes in (post("/predict", BODY, version="1.0"), post("/predict", BODY, "Connection: close")):
        with served.connect() as sock:
            reader = Reader(sock)
            sock.sendall(request_bytes)
            answer = reader.answer()
            assert answer.status == 200 and answer.body.endswith(NINES)
            assert answer.headers.get("connection") == "close"
            assert reader.closed()
    assert served.hot == ["/predict"]  # HTTP/1.0 is left to uvicorn


def test_a_body_over_the_limit_gets_413_and_changes_nothing(served: Served) -> None:
    big = json.dumps({"model": "affine", "inputs": [[4, 4, 4, 4]] * 2000}).encode()
    assert len(big) > LIMIT_MB * 1024 * 1024
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(post("/predict", big))
        answer = reader.answer()
    assert answer.status == 413 and json.loads(answer.body)["code"] == "payload_too_large"
    assert served.hot == []
    assert 'maas_inference_requests_total{model="affine"' not in served.metrics()


def test_a_client_that_hangs_up_leaves_the_queue_and_counts_as_499(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        assert http.post("/predict", content=BODY).status_code == 200  # loaded
        served.gate.clear()
        served.entered.clear()
        held = pool.submit(http.post, "/predict", content=BODY)  # takes the model and waits at the gate
        assert served.entered.wait(10)
        clients = [served.connect() for _ in range(3)]
        try:
            for client in clients:
                client.sendall(post("/predict"))
            _until(lambda: 'maas_queue_depth{model="affine",version="1"} 3.0' in served.metrics(), "3 queued")
        finally:
            for client in clients:
                client.close()
        _until(lambda: 'maas_queue_depth{model="affine",version="1"} 0.0' in served.metrics(), "the queue to empty")
        _until(lambda: 'route="/predict",status="499"} 3.0' in served.metrics(), "3 requests counted as 499")
        served.gate.set()
        assert held.result(10).status_code == 200
        assert http.post("/predict", content=BODY).status_code == 200
    metrics = served.metrics()
    assert 'maas_inference_requests_total{model="affine",status="200",version="1"} 3.0' in metrics
    assert 'maas_batch_size_sum{model="affine",version="1"} 3.0' in metrics  # nothing ran for the three
    assert served.in_tasks == ["/predict"]  # the one that resolved the version: the hung-up three had no task


def test_serve_picks_the_protocol_unless_told_to_use_h11(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/maas.db", workers=0))
    for http in ("auto", "httptools"):
        protocol = _http_protocol(http, app)
        assert isinstance(protocol, type) and issubclass(protocol, HotPathProtocol)
        assert protocol.hot_path is app.hot_path
    assert _http_protocol("h11", app) == "h11"
