"""The PyTorch backend on a GPU: same answers as on the CPU, half precision, ``auto``, memory given back.

Skipped where torch sees no CUDA device, so the suite stays green on CPU-only machines and CI. The fixed MLP's
weights and inputs are multiples of 1/4, so its layers compute exactly in float32 and TF32 alike: a difference
beyond the last bits of the softmax is a bug, not rounding.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maas.config import Settings
from maas.inference.backends import Backend, TorchBackend, build_backend
from maas.inference.backends.base import TensorSpec
from maas.inference.engine import InferenceEngine
from maas.inference.servable import ServableArtifact, ServableVersion
from tests.inference.fakes import FakeResolver, doubling_torch_version

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

WIDTH, HIDDEN, CLASSES = 16, 32, 10


def mlp_factory(architecture: dict[str, Any], weights: bytes) -> Any:
    """Stands in for maas.training.weights.load_serving_module: a small classifier from safetensors bytes."""
    from safetensors.torch import load

    module = torch.nn.Sequential(
        torch.nn.Linear(architecture["in"], architecture["hidden"]), torch.nn.ReLU(),
        torch.nn.Linear(architecture["hidden"], architecture["out"]), torch.nn.Softmax(dim=1),
    )
    module.load_state_dict(load(weights))
    return module.eval()


@pytest.fixture
def mlp_weights(tmp_path: Path) -> Path:
    """Weights in {-0.5, -0.25, 0, 0.25, 0.5}: with inputs in quarter steps, every product and sum is exact."""
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    shapes = {"0.weight": (HIDDEN, WIDTH), "0.bias": (HIDDEN,), "2.weight": (CLASSES, HIDDEN), "2.bias": (CLASSES,)}
    tensors = {name: torch.from_numpy(rng.integers(-2, 3, shape).astype(np.float32) / 4)
               for name, shape in shapes.items()}
    path = tmp_path / "mlp.safetensors"
    save_file(tensors, path)
    return path


def inputs(rows: int) -> np.ndarray:
    return (np.random.default_rng(1).integers(-4, 5, (rows, WIDTH)) / 4).astype(np.float32)


def mlp_backend(weights: Path, device: str, half: bool = False) -> TorchBackend:
    return TorchBackend({"in": WIDTH, "hidden": HIDDEN, "out": CLASSES}, weights, input_shape=[WIDTH],
                        device=device, half=half, module_factory=mlp_factory)


def run_once(backend: Backend, x: np.ndarray) -> np.ndarray:
    backend.load()
    try:
        return backend.predict(x)["probabilities"]
    finally:
        backend.unload()


def test_cuda_answers_what_the_cpu_answers(mlp_weights: Path) -> None:
    x = inputs(257)
    on_cpu = run_once(mlp_backend(mlp_weights, "cpu"), x)
    backend = mlp_backend(mlp_weights, "cuda")
    backend.load()
    assert backend.input_spec == TensorSpec("input", "FP32", [-1, WIDTH])
    assert backend.output_specs == [TensorSpec("probabilities", "FP32", [-1, CLASSES])]
    read_only = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(x.shape)  # as V2 binary inputs are
    on_cuda = backend.predict(read_only)["probabilities"]
    backend.unload()
    assert isinstance(on_cuda, np.ndarray) and on_cuda.dtype == np.float32 and on_cuda.shape == (257, CLASSES)
    np.testing.assert_allclose(on_cuda, on_cpu, atol=1e-4)


def test_half_precision_on_cuda_answers_float32_close_to_full_precision(mlp_weights: Path) -> None:
    x = inputs(64)
    expected = run_once(mlp_backend(mlp_weights, "cuda"), x)
    answer = run_once(mlp_backend(mlp_weights, "cuda", half=True), x)
    assert answer.dtype == np.float32
    np.testing.assert_allclose(answer, expected, atol=1e-2)


def test_half_precision_standardises_raw_values_beyond_float16s_range(tmp_path: Path) -> None:
    # Autocast keeps the baked-in standardisation in float32: a raw 1e6 (float16 tops out at 65504) must not
    # turn into inf before it is scaled down.
    from maas.training.serving import serving_module_from_document
    from maas.training.weights import save_weights

    document = {"format": "maas.architecture/v1", "architecture": {"type": "mlp", "hidden": [16], "dropout": 0.0},
                "input_shape": [4], "n_outputs": 3, "image_shape": None, "task": "classification",
                "preprocessing": {}}
    torch.manual_seed(0)
    module = serving_module_from_document(document)
    state = module.state_dict()
    for name, value in state.items():  # features around 1e6 with a spread of 1e5, as in raw money amounts
        if name.endswith("mean"):
            value.fill_(1e6)
        elif name.endswith("std") or name.endswith("scale"):
            value.fill_(1e5)
    weights = tmp_path / "mlp.safetensors"
    weights.write_bytes(save_weights(state))
    x = np.random.default_rng(3).normal(1e6, 1e5, (32, 4)).astype(np.float32)
    on_cpu = run_once(TorchBackend(document, weights, input_shape=[4], device="cpu"), x)
    on_cuda = run_once(TorchBackend(document, weights, input_shape=[4], device="cuda", half=True), x)
    assert np.isfinite(on_cuda).all()
    np.testing.assert_allclose(on_cuda, on_cpu, atol=2e-2)


def test_auto_picks_the_gpu_and_unload_gives_its_memory_back(mlp_weights: Path) -> None:
    run_once(mlp_backend(mlp_weights, "cuda"), inputs(1024))  # cuBLAS keeps its workspace: allocate it first
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    backend = mlp_backend(mlp_weights, "auto")
    backend.load()
    assert torch.cuda.memory_allocated() - before >= backend.footprint_bytes > 0  # the weights live on the GPU
    backend.predict(inputs(1024))
    backend.unload()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before


@pytest.mark.parametrize(("half", "atol"), [(False, 5e-3), (True, 2e-2)])  # cuDNN may run fp32 convs in TF32
def test_a_trained_cnn_rebuilt_from_its_document_serves_on_cuda(tmp_path: Path, half: bool, atol: float) -> None:
    """The real path: architecture JSON + safetensors through maas.training's loader, conv and batch norm included."""
    from maas.training.serving import serving_module_from_document
    from maas.training.weights import save_weights

    document = {"format": "maas.architecture/v1",
                "architecture": {"type": "cnn", "channels": [8, 16], "kernel_size": 3, "pooling": "max",
                                 "fc": [32], "dropout": 0.1, "batch_norm": True},
                "input_shape": [64], "n_outputs": 10, "image_shape": [1, 8, 8], "task": "classification",
                "preprocessing": {}}
    torch.manual_seed(0)
    weights = tmp_path / "cnn.safetensors"
    weights.write_bytes(save_weights(serving_module_from_document(document).state_dict()))
    x = np.random.default_rng(2).uniform(0, 1, (128, 64)).astype(np.float32)  # logits of order 1
    on_cpu = run_once(TorchBackend(document, weights, input_shape=[64], device="cpu"), x)
    on_cuda = run_once(TorchBackend(document, weights, input_shape=[64], device="cuda", half=half), x)
    assert on_cuda.dtype == np.float32
    np.testing.assert_allclose(on_cuda, on_cpu, atol=atol)


@pytest.mark.parametrize("half", [False, True])
def test_the_engine_serves_a_torch_variant_on_cuda_through_the_batcher(tmp_path: Path, half: bool) -> None:
    resolver = FakeResolver()
    resolver.add(doubling_torch_version(tmp_path), None)
    built: list[Backend] = []

    def factory(servable: ServableVersion, artifact: ServableArtifact, settings: Settings) -> Backend:
        built.append(build_backend(servable, artifact, settings))
        return built[-1]

    engine = InferenceEngine(Settings(device="cuda", torch_half=half, max_batch_size=16), resolver,
                             backend_factory=factory)
    x = [np.full([1 + i % 3, 4], float(i % 5), dtype=np.float32) for i in range(60)]

    async def serve() -> list[Any]:
        await engine.start()
        try:
            deadline = time.monotonic() + 60
            return await asyncio.gather(*(engine.predict("acme", "affine", None, "torch", r, deadline) for r in x))
        finally:
            await engine.stop()

    results = asyncio.run(serve())
    for rows, result in zip(x, results, strict=True):
        assert result.variant == "torch"
        assert result.outputs["prediction"].dtype == np.float32
        np.testing.assert_array_equal(result.outputs["prediction"], 2 * rows + 1)
    assert len(built) == 1 and isinstance(built[0], TorchBackend)
    # Linear weight and bias, feature mean/std, target mean/std: float32 either way (half = autocast).
    assert built[0].footprint_bytes == (16 + 4 + 4 + 4 + 1 + 1) * 4
