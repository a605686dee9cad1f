"""PyTorch backend: the network rebuilt from its architecture JSON plus safetensors weights (never a pickle).

``torch`` and ``maas.training`` are imported inside ``load`` so that importing the engine stays cheap and
servers that only run ONNX never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maas.inference.backends.base import TensorSpec
from maas.inference.footprint import release_free_memory

# (architecture document, safetensors bytes) -> an nn.Module in eval mode; defaults to maas.training's own.
ModuleFactory = Callable[[dict[str, Any], bytes], Any]


class TorchBackend:
    def __init__(
        self,
        architecture: dict[str, Any],
        weights_path: Path,
        *,
        input_shape: Sequence[int],
        output_name: str = "probabilities",
        device: str = "cpu",
        half: bool = False,
        module_factory: ModuleFactory | None = None,
    ) -> None:
        self._architecture = architecture
        self._weights_path = weights_path
        self._input = TensorSpec("input", "FP32", [-1, *input_shape])
        self._output_name = output_name
        self._device_name = device
        self._half = half
        self._factory = module_factory
        self._module: Any = None
        self._device: Any = None
        self._autocast = False
        self._outputs: list[TensorSpec] = []
        self._footprint = 0

    @property
    def input_spec(self) -> TensorSpec:
        return self._input

    @property
    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    @property
    def footprint_bytes(self) -> int:
        return self._footprint

    def load(self) -> None:
        import torch

        factory = self._factory or _training_factory()
        module = factory(self._architecture, self._weights_path.read_bytes())
        self._device = torch.device(_resolve_device(self._device_name, torch))
        # Half precision only pays off (and is only exact enough to be worth it) on a GPU. It is float16
        # autocast, as in mixed-precision training: matrix products and convolutions run in float16 while the
        # weights, the baked-in standardisation and the inputs stay float32, so a raw feature beyond float16's
        # range (65504) is standardised before anything is rounded to it.
        self._autocast = self._half and self._device.type == "cuda"
        self._module = module.to(device=self._device, dtype=torch.float32).eval()
        self._footprint = sum(t.numel() * t.element_size() for t in _tensors(self._module))
        probe = self._run(np.zeros([1, *self._input.shape[1:]], dtype=np.float32))
        self._outputs = [TensorSpec(name, "FP32", [-1, *value.shape[1:]]) for name, value in probe.items()]

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(batch)

    def unload(self) -> None:
        self._module = None
        if self._device is not None and self._device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        release_free_memory()

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        if not batch.flags.writeable:
            batch = batch.copy()  # torch.from_numpy warns on read-only buffers (V2 binary inputs are)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self._autocast):
            tensor = torch.from_numpy(batch).to(device=self._device, non_blocking=True)
            result = self._module(tensor)
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, np.ndarray]:
        if isinstance(result, dict):
            return {str(name): _to_numpy(value) for name, value in result.items()}
        if isinstance(result, list | tuple):
            names = [self._output_name, *(f"output_{i}" for i in range(1, len(result)))]
            return {name: _to_numpy(value) for name, value in zip(names, result, strict=True)}
        return {self._output_name: _to_numpy(result)}


def _training_factory() -> ModuleFactory:
    from maas.training.weights import load_serving_module

    return load_serving_module


def _resolve_device(device: str, torch: Any) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _tensors(module: Any) -> list[Any]:
    return [*module.parameters(), *module.buffers()]


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().float().cpu().numpy()
