from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maas.training.serving import ServingModule
from maas.training.standardize import feature_statistics, target_statistics


def fixed_linear(weight: float, bias: float, n_in: int = 1, n_out: int = 1) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.fill_(weight)
        layer.bias.fill_(bias)
    return layer


def test_regression_standardises_inputs_and_restores_target_units() -> None:
    module = ServingModule(fixed_linear(2.0, 1.0), [1], "regression")
    module.set_statistics(np.array([3.0]), np.array([2.0]), target=(100.0, 10.0))
    # x=5 -> (5-3)/2 = 1 -> 2*1+1 = 3 -> 3*10+100 = 130
    assert module(torch.tensor([[5.0]])).tolist() == [[130.0]]
    assert module.output_name == "prediction"


def test_classification_returns_probabilities() -> None:
    module = ServingModule(fixed_linear(1.0, 0.0, n_in=2, n_out=3), [2], "classification")
    probabilities = module(torch.randn(4, 2))
    assert probabilities.shape == (4, 3)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))
    assert module.output_name == "probabilities"
    assert "target_mean" not in module.state_dict()


def test_per_feature_statistics_ignore_constant_features() -> None:
    x = np.array([[0.0, 1.0], [0.0, 3.0]], dtype=np.float32)
    mean, std, mode = feature_statistics(x, None, enabled=True)
    assert mode == "per_feature"
    assert mean.tolist() == [0.0, 2.0] and std.tolist() == [1.0, 1.0]  # constant feature: std 1, not 0


def test_per_channel_statistics_are_shaped_like_a_flat_row() -> None:
    x = np.concatenate([np.zeros((3, 4)), np.full((3, 4), 2.0)], axis=1).astype(np.float32)  # 2 channels of 2x2
    mean, std, mode = feature_statistics(x, [2, 2, 2], enabled=True)
    assert mode == "per_channel" and mean.shape == (8,)
    assert mean.tolist() == [0.0] * 4 + [2.0] * 4 and std.tolist() == [1.0] * 8


def test_disabled_statistics_are_the_identity() -> None:
    mean, std, mode = feature_statistics(np.ones((3, 2), np.float32), None, enabled=False)
    assert (mean.tolist(), std.tolist(), mode) == ([0.0, 0.0], [1.0, 1.0], "none")
    assert target_statistics(np.array([1.0, 5.0]), enabled=False) == (0.0, 1.0)


def test_target_statistics() -> None:
    assert target_statistics(np.array([1.0, 3.0]), enabled=True) == pytest.approx((2.0, 1.0))
