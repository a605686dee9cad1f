from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maas.config import Settings
from maas.inference.backends import OnnxRuntimeBackend, TorchBackend, build_backend
from maas.inference.backends.base import TensorSpec
from maas.inference.servable import ServableArtifact
from tests.inference.fakes import make_servable, write_artifact

FOURS = np.full([2, 4], 4.0, dtype=np.float32)


def test_onnx_runtime_backend_runs_the_model_exactly(affine_artifact: ServableArtifact) -> None:
    backend = OnnxRuntimeBackend(affine_artifact.path)
    backend.load()
    assert backend.input_spec == TensorSpec("input", "FP32", [-1, 4])
    assert backend.output_specs == [TensorSpec("output", "FP32", [-1, 4])]
    assert backend.providers == ["CPUExecutionProvider"]
    assert backend.footprint_bytes == affine_artifact.size_bytes
    np.testing.assert_array_equal(backend.predict(FOURS)["output"], np.full([2, 4], 9.0))
    np.testing.assert_array_equal(backend.predict(FOURS.astype(np.float64))["output"], np.full([2, 4], 9.0))
    backend.unload()


def test_onnx_runtime_session_uses_the_configured_threads(affine_artifact: ServableArtifact) -> None:
    backend = OnnxRuntimeBackend(affine_artifact.path, intra_op_threads=2, spinning=True)
    import onnxruntime as ort

    options = backend._options(ort)
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    default = OnnxRuntimeBackend(affine_artifact.path)._options(ort)
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_asking_for_cuda_without_a_cuda_build_is_a_clear_error(affine_artifact: ServableArtifact) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(RuntimeError, match="no CUDA provider"):
        OnnxRuntimeBackend(affine_artifact.path, device="cuda")._providers(ort)


def affine_module_factory(architecture: dict[str, Any], weights: bytes) -> Any:
    """Stands in for maas.training.weights.load_serving_module: rebuilds from JSON + safetensors bytes."""
    import torch
    from safetensors.torch import load

    module = torch.nn.Linear(architecture["in"], architecture["out"])
    module.load_state_dict(load(weights))
    return module


@pytest.fixture
def linear_weights(tmp_path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "linear.safetensors"
    save_file({"weight": torch.eye(4) * 2, "bias": torch.ones(4)}, path)
    return path


def test_torch_backend_rebuilds_the_network_from_json_and_safetensors(linear_weights: Path) -> None:
    backend = TorchBackend({"in": 4, "out": 4}, linear_weights, input_shape=[4], output_name="prediction",
                           module_factory=affine_module_factory)
    backend.load()
    assert backend.input_spec == TensorSpec("input", "FP32", [-1, 4])
    assert backend.output_specs == [TensorSpec("prediction", "FP32", [-1, 4])]
    assert backend.footprint_bytes == (16 + 4) * 4
    read_only = np.frombuffer(FOURS.tobytes(), dtype=np.float32).reshape(2, 4)  # as V2 binary inputs are
    np.testing.assert_array_equal(backend.predict(read_only)["prediction"], np.full([2, 4], 9.0))
    backend.unload()


def test_build_backend_picks_the_runtime_from_the_artifact(
    affine_artifact: ServableArtifact, linear_weights: Path, tmp_path: Path
) -> None:
    settings = Settings(ort_intra_op_threads=1)
    onnx = make_servable({"onnx": affine_artifact})
    assert isinstance(build_backend(onnx, affine_artifact, settings), OnnxRuntimeBackend)
    weights = write_artifact(tmp_path / "deadbeef", linear_weights.read_bytes(), kind="pruned")
    torch_version = make_servable({"pruned": weights}, architecture={"in": 4, "out": 4})
    assert isinstance(build_backend(torch_version, weights, settings), TorchBackend)


def test_importing_the_engine_imports_neither_torch_nor_onnxruntime() -> None:
    code = ("import sys, maas.inference.engine, maas.inference.codecs; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'fastapi', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
