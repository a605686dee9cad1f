"""The contract every inference backend fulfils: ``load / predict / unload`` plus its tensor signature.

The engine only ever talks to this contract, so a backend is swappable (ONNX Runtime, PyTorch, a test fake)
without the batcher, cache or codecs knowing which one runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a model's signature, in KServe V2 vocabulary (``FP32``, ``-1`` = dynamic)."""

    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class Backend(Protocol):
    """A loaded model that maps one batch ``[N, *input_shape]`` to named outputs ``[N, ...]``.

    ``predict`` is called from one dedicated worker thread per model, never from the event loop, and never
    concurrently for the same backend; ``load`` and ``unload`` run on that same thread.
    """

    @property
    def input_spec(self) -> TensorSpec:
        """The one input the engine feeds (batch dimension included, ``-1`` when dynamic)."""
        ...

    @property
    def output_specs(self) -> list[TensorSpec]:
        """Every output ``predict`` returns, in the model's order."""
        ...

    @property
    def footprint_bytes(self) -> int:
        """A measured lower bound of the memory the loaded model holds (weights actually in memory)."""
        ...

    def load(self) -> None: ...

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def unload(self) -> None: ...


def fixed_batch_size(spec: TensorSpec) -> int | None:
    """The batch size a model was exported with, when it is not dynamic (the batcher must not exceed it)."""
    if spec.shape and spec.shape[0] > 0:
        return spec.shape[0]
    return None
