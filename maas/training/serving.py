"""The module that is exported and served: raw features in, final numbers out.

Standardisation statistics (fitted on the train split only) and the regression target scaling are buffers of this
module, so they travel inside the safetensors weights and the ONNX graph: no client ever has to know them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from maas.training.architectures import network_from_document


class ServingModule(nn.Module):
    """``network`` wrapped with its input standardisation and output head (softmax, or target de-scaling)."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(self, network: nn.Module, input_shape: list[int], task: str) -> None:
        super().__init__()
        self.network = network
        self.task = task
        self.register_buffer("feature_mean", torch.zeros(input_shape))
        self.register_buffer("feature_std", torch.ones(input_shape))
        if task == "regression":
            self.register_buffer("target_mean", torch.zeros(1))
            self.register_buffer("target_std", torch.ones(1))

    @property
    def output_name(self) -> str:
        return "probabilities" if self.task == "classification" else "prediction"

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean) / self.feature_std

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        """Network output -> served numbers: class probabilities, or values in the target's own units."""
        if self.task == "classification":
            return torch.softmax(raw, dim=1)
        return raw * self.target_std + self.target_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.network(self.standardize(x)))

    def set_statistics(self, feature_mean: np.ndarray, feature_std: np.ndarray,
                       target: tuple[float, float] | None = None) -> None:
        self.feature_mean.copy_(torch.as_tensor(feature_mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(feature_std, dtype=torch.float32))
        if target is not None:
            self.target_mean.fill_(target[0])
            self.target_std.fill_(target[1])


def serving_module_from_document(doc: dict[str, Any]) -> ServingModule:
    """An untrained :class:`ServingModule` with the exact structure (and state-dict keys) ``doc`` describes."""
    return ServingModule(network_from_document(doc), doc["input_shape"], doc["task"])
