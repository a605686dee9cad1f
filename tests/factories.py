"""Real, tiny things for tests: fixed-weight ONNX models whose outputs are exact, and registry helpers."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maas.inference.backends.base import Backend, TensorSpec


def affine_onnx(n_in: int = 4, weight: float = 2.0, bias: float = 1.0) -> bytes:
    """y = weight * x + bias elementwise, input [-1, n_in] -> output [-1, n_in]: 4 -> 9 with the defaults."""
    w = numpy_helper.from_array(np.full((n_in,), weight, dtype=np.float32), "w")
    b = numpy_helper.from_array(np.full((n_in,), bias, dtype=np.float32), "b")
    nodes = [helper.make_node("Mul", ["input", "w"], ["scaled"]),
             helper.make_node("Add", ["scaled", "b"], ["output"])]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_in])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, n_in])]
    graph = helper.make_graph(nodes, "affine", inputs, outputs, [w, b])
    return _serialise(graph)


def classifier_onnx(n_in: int = 4, n_classes: int = 3) -> bytes:
    """softmax(x @ W) with W[i, j] = 1 if i % n_classes == j: the class is the argmax of summed feature groups."""
    weights = np.zeros((n_in, n_classes), dtype=np.float32)
    for i in range(n_in):
        weights[i, i % n_classes] = 1.0
    w = numpy_helper.from_array(weights, "w")
    nodes = [helper.make_node("MatMul", ["input", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(nodes, "classifier",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_in])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])],
                              [w])
    return _serialise(graph)


def identity_onnx(inputs: list[Any]) -> bytes:
    """Identity of each of ``inputs`` (value infos): graphs whose inputs maas cannot feed, for import tests."""
    nodes = [helper.make_node("Identity", [v.name], [f"{v.name}_out"]) for v in inputs]
    outputs = [helper.make_value_info(f"{v.name}_out", v.type) for v in inputs]
    return _serialise(helper.make_graph(nodes, "identity", inputs, outputs))


def _serialise(graph: Any) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="maas-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def import_model(client: Any, name: str, blob: bytes, headers: dict[str, str] | None = None,
                 **metadata: Any) -> dict[str, Any]:
    """``POST /models`` through a test client (``TestClient`` or ``httpx.Client``); returns the new version."""
    response = client.post("/models", files={"file": ("m.onnx", blob)},
                           data={"name": name, "metadata": json.dumps(metadata)}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def runner_pids(checkpoints_dir: Path, job_id: str) -> list[int]:
    """The live ``maas.jobs.runner`` process of a job, from the ``runner.pid`` it writes (zombies excluded).

    Not found by command line: a child started ahead in standby learns its job on stdin, not from argv.
    """
    try:
        pid = int((checkpoints_dir / job_id / "runner.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return []
    return [pid] if b"maas.jobs.runner" in cmdline and "\nState:\tZ" not in status else []


class GatedBackend:
    """The real ONNX backend, but ``predict`` waits at a gate while the test holds it closed."""

    def __init__(self, inner: Backend, gate: threading.Event, entered: threading.Event) -> None:
        self._inner, self._gate, self._entered = inner, gate, entered

    @property
    def input_spec(self) -> TensorSpec:
        return self._inner.input_spec

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self._inner.output_specs

    @property
    def footprint_bytes(self) -> int:
        return self._inner.footprint_bytes

    def load(self) -> None:
        self._inner.load()

    def unload(self) -> None:
        self._inner.unload()

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self._entered.set()
        self._gate.wait(10)
        return self._inner.predict(batch)
