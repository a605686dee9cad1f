"""ONNX Runtime backend: one ``InferenceSession`` per loaded model version.

Threading defaults favour a server that runs many small models on shared cores: one intra-op thread, no
spinning (an idle spinning pool burns a core per model), sequential execution. ORT releases the GIL inside
``run``, so the event loop keeps accepting while a batch runs on the model's worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maas.inference.backends.base import TensorSpec
from maas.inference.footprint import release_free_memory

# ORT type strings -> KServe V2 datatypes (the ones a served model may plausibly use).
_DATATYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(int64)": "INT64",
    "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}
_NUMPY_TYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64,
                "INT32": np.int32, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


class OnnxRuntimeBackend:
    def __init__(
        self, path: Path, *, intra_op_threads: int = 1, spinning: bool = False, device: str = "cpu"
    ) -> None:
        self._path = path
        self._intra_op_threads = intra_op_threads
        self._spinning = spinning
        self._device = device
        self._session: Any = None
        self._input: TensorSpec | None = None
        self._input_dtype: Any = np.float32
        self._outputs: list[TensorSpec] = []
        self._input_name = ""
        self._output_names: list[str] = []
        self._footprint = 0

    @property
    def input_spec(self) -> TensorSpec:
        if self._input is None:
            raise RuntimeError("The ONNX model is not loaded.")
        return self._input

    @property
    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    @property
    def footprint_bytes(self) -> int:
        return self._footprint

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers()) if self._session is not None else []

    def load(self) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(
            str(self._path), sess_options=self._options(ort), providers=self._providers(ort)
        )
        first = self._session.get_inputs()[0]
        self._input = _spec(first)
        self._input_name = self._input.name
        self._input_dtype = _NUMPY_TYPES.get(self._input.datatype, np.float32)
        self._outputs = [_spec(o) for o in self._session.get_outputs()]
        self._output_names = [spec.name for spec in self._outputs]  # named: ORT's run(None) lists them per call
        # ORT copies every initializer into its own buffers, so the file size is what the weights cost at least.
        self._footprint = self._path.stat().st_size

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if batch.dtype != self._input_dtype:
            batch = batch.astype(self._input_dtype)  # imported models may take FP64 or FP16
        results = self._session.run(self._output_names, {self._input_name: batch})
        return dict(zip(self._output_names, results, strict=True))

    def unload(self) -> None:
        self._session = None
        release_free_memory()

    def _options(self, ort: Any) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spin = "1" if self._spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        return options

    def _providers(self, ort: Any) -> list[Any]:
        """GPU providers only when the device allows them and onnxruntime-gpu actually ships them."""
        available = set(ort.get_available_providers())
        if self._device == "cpu":
            return ["CPUExecutionProvider"]
        device_id = int(self._device.partition(":")[2] or 0)
        chosen: list[Any] = []
        for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            if name in available:
                chosen.append((name, {"device_id": device_id}))
        if self._device.startswith("cuda") and not chosen:
            raise RuntimeError(f"device={self._device} but this onnxruntime has no CUDA provider.")
        return [*chosen, "CPUExecutionProvider"]


def _spec(node: Any) -> TensorSpec:
    # Symbolic dimensions ("batch", None) become -1, as in the V2 metadata.
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in (node.shape or [])]
    return TensorSpec(name=node.name, datatype=_DATATYPES.get(node.type, "UNKNOWN"), shape=shape)
