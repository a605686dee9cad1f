"""Export a serving module to ONNX with a dynamic batch axis, and prove the export computes the same numbers.

The classic TorchScript exporter (``dynamo=False``) is used: on these small feed-forward graphs it is several
times faster than the dynamo exporter and does not depend on onnxscript's optimiser, and both give identical
outputs (measured: 20-90 ms against 1-3 s per model here, and dynamo cannot emit opset 17 for these graphs
without a failing version conversion). The file is written atomically.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAME = "input"


def export_onnx(module: nn.Module, input_shape: list[int], path: Path, *, output_name: str = "probabilities",
                opset: int = 17) -> None:
    """Write ``module`` (raw features ``[N, *input_shape]`` in) to ``path`` as a self-contained ONNX model."""
    module = module.eval()
    example = torch.zeros(2, *input_shape, dtype=torch.float32)
    # Exported next to its destination, then renamed: a crash never leaves half a model at ``path``.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo but still supported; its notice is noise.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module, (example,), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[output_name],
                dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
            )
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_parity(module: nn.Module, onnx_path: Path, sample: np.ndarray) -> float:
    """Largest absolute difference between ``module`` and ONNX Runtime (CPU) on ``sample``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = np.ascontiguousarray(sample, dtype=np.float32)
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: inputs})
    with torch.no_grad():
        torch_out = module.eval()(torch.from_numpy(inputs)).numpy()
    return float(np.max(np.abs(torch_out.astype(np.float64) - onnx_out.astype(np.float64)), initial=0.0))


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
