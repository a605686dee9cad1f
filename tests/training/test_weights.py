from __future__ import annotations

import json

import pytest
import torch

from maas.datasets.schema import ParsedDataset
from maas.errors import InvalidModel
from maas.training.spec import TrainSpec
from maas.training.trainer import train
from maas.training.weights import load_serving_module, save_weights


@pytest.mark.parametrize("architecture", [{"type": "mlp"}, {"type": "cnn", "channels": [4, 8], "fc": [16]},
                                          {"type": "resnet", "channels": [4, 8]}])
def test_weights_round_trip_through_safetensors(digits: ParsedDataset, architecture: dict[str, str]) -> None:
    spec = TrainSpec.model_validate({"dataset": "digits", "architecture": architecture,
                                     "hyperparameters": {"epochs": 1}})
    result = train(digits, spec, checkpoint_path=None)
    weights = save_weights(result.state_dict)
    loaded = load_serving_module(json.loads(json.dumps(result.architecture)), weights)
    assert digits.X is not None
    x = torch.as_tensor(digits.X[:32])
    assert not loaded.training
    assert torch.equal(loaded(x), result.serving_module(x))


def test_weights_of_another_architecture_are_refused(digits: ParsedDataset) -> None:
    small = TrainSpec.model_validate({"dataset": "digits", "architecture": {"hidden": [8]},
                                      "hyperparameters": {"epochs": 1}})
    big = small.model_copy(update={"architecture": small.architecture.model_copy(update={"hidden": [16]})})
    weights = save_weights(train(digits, small, checkpoint_path=None).state_dict)
    with pytest.raises(InvalidModel, match="do not match"):
        load_serving_module(train(digits, big, checkpoint_path=None).architecture, weights)


def test_garbage_weights_are_refused(digits: ParsedDataset) -> None:
    spec = TrainSpec.model_validate({"dataset": "digits", "hyperparameters": {"epochs": 1}})
    with pytest.raises(InvalidModel, match="safetensors"):
        load_serving_module(train(digits, spec, checkpoint_path=None).architecture, b"not a safetensors file")
