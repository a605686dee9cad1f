from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from maas.errors import InvalidModel
from maas.training.architectures import architecture_document, build_network, network_from_document
from maas.training.spec import ArchitectureSpec

CASES = [
    ({"type": "linear"}, [4], None),
    ({"type": "mlp", "hidden": [16, 8], "activation": "gelu", "dropout": 0.2, "batch_norm": True}, [4], None),
    ({"type": "mlp", "hidden": [8], "activation": "tanh", "dropout": 0.0, "batch_norm": False}, [4], None),
    ({"type": "cnn", "channels": [4, 8], "kernel_size": 3, "pooling": "max", "fc": [16], "dropout": 0.1,
      "batch_norm": True}, [64], [1, 8, 8]),
    ({"type": "cnn", "channels": [4, 4, 4, 4], "kernel_size": 3, "pooling": "avg", "fc": [], "dropout": 0.0,
      "batch_norm": False, "activation": "silu"}, [3, 5, 7], [3, 5, 7]),
    ({"type": "resnet", "channels": [4, 8], "kernel_size": 3, "blocks": 2, "fc": [], "dropout": 0.0}, [64],
     [1, 8, 8]),
    ({"type": "resnet", "channels": [4, 8, 8], "kernel_size": 3, "blocks": 1, "fc": [8], "dropout": 0.0},
     [1, 2, 2], [1, 2, 2]),
]


@pytest.mark.parametrize(("arch", "input_shape", "image_shape"), CASES)
def test_output_shape(arch: dict[str, Any], input_shape: list[int], image_shape: list[int] | None) -> None:
    network = build_network(ArchitectureSpec.model_validate(arch), input_shape, 3, image_shape).eval()
    assert network(torch.randn(5, *input_shape)).shape == (5, 3)
    assert network(torch.randn(1, *input_shape)).shape == (1, 3)


@pytest.mark.parametrize(("arch", "input_shape", "image_shape"), CASES)
def test_document_rebuilds_the_same_network(arch: dict[str, Any], input_shape: list[int],
                                            image_shape: list[int] | None) -> None:
    spec = ArchitectureSpec.model_validate(arch)
    original = build_network(spec, input_shape, 3, image_shape).eval()
    doc = architecture_document(spec, input_shape, 3, image_shape, "classification", {"features": "none"})
    rebuilt = network_from_document(json.loads(json.dumps(doc))).eval()
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(6, *input_shape)
    assert torch.equal(original(x), rebuilt(x))


def test_unknown_document_format_is_refused() -> None:
    with pytest.raises(InvalidModel, match="format"):
        network_from_document({"format": "pickle", "architecture": {}})
