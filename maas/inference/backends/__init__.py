"""Inference backends behind one contract (``base.Backend``), and the choice of one for an artifact.

Importing this package imports neither onnxruntime nor torch: each backend imports its library in ``load``.
"""

from __future__ import annotations

from pathlib import Path

from maas.config import Settings
from maas.errors import InvalidModel
from maas.inference.backends.base import Backend, TensorSpec
from maas.inference.backends.onnxruntime import OnnxRuntimeBackend
from maas.inference.backends.torch import TorchBackend
from maas.inference.servable import ServableArtifact, ServableVersion

__all__ = ["Backend", "OnnxRuntimeBackend", "TensorSpec", "TorchBackend", "build_backend"]


def build_backend(servable: ServableVersion, artifact: ServableArtifact, settings: Settings) -> Backend:
    """ONNX Runtime for ONNX files, PyTorch for safetensors weights (decided by content: store paths are hashes)."""
    if artifact.kind == "torch" or (not artifact.kind.startswith("onnx") and _is_safetensors(artifact.path)):
        if servable.architecture is None:
            raise InvalidModel(f"Version {servable.version} has torch weights but no architecture to rebuild.")
        return TorchBackend(
            servable.architecture,
            artifact.path,
            input_shape=servable.input_shape,
            output_name="probabilities" if servable.task == "classification" else "prediction",
            device=settings.device,
            half=settings.torch_half,
        )
    return OnnxRuntimeBackend(
        artifact.path,
        intra_op_threads=settings.ort_intra_op_threads,
        spinning=settings.ort_spinning,
        device=settings.device,
    )


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length and then the JSON header's ``{``."""
    with path.open("rb") as handle:
        return handle.read(9)[8:9] == b"{"
