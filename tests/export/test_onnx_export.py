from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from maas.export.onnx import check_parity, export_onnx
from maas.training.architectures import build_network
from maas.training.serving import ServingModule
from maas.training.spec import ArchitectureSpec

CASES = [
    ("classification", {"type": "mlp", "hidden": [16, 16], "dropout": 0.1, "batch_norm": True}, [10], None),
    ("regression", {"type": "mlp", "hidden": [16], "activation": "gelu"}, [10], None),
    ("classification", {"type": "linear"}, [10], None),
    ("classification", {"type": "cnn", "channels": [4, 8], "kernel_size": 3, "fc": [16], "batch_norm": True,
                        "pooling": "avg"}, [64], [1, 8, 8]),
    ("classification", {"type": "resnet", "channels": [4, 8], "kernel_size": 3, "blocks": 1, "fc": []},
     [1, 8, 8], [1, 8, 8]),
]


def serving_module(task: str, arch: dict[str, object], input_shape: list[int],
                   image_shape: list[int] | None) -> ServingModule:
    torch.manual_seed(0)
    n_outputs = 3 if task == "classification" else 1
    network = build_network(ArchitectureSpec.model_validate(arch), input_shape, n_outputs, image_shape)
    module = ServingModule(network, input_shape, task)
    rng = np.random.default_rng(0)
    target = (150.0, 70.0) if task == "regression" else None
    module.set_statistics(rng.normal(size=input_shape), rng.uniform(0.5, 2.0, size=input_shape), target)
    for m in module.modules():  # non-trivial batch-norm statistics, so eval mode really uses them
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]  # present whenever running_mean is
    return module.eval()


@pytest.mark.parametrize(("task", "arch", "input_shape", "image_shape"), CASES)
def test_export_matches_torch_at_batch_1_and_64(tmp_path: Path, task: str, arch: dict[str, object],
                                                input_shape: list[int], image_shape: list[int] | None) -> None:
    module = serving_module(task, arch, input_shape, image_shape)
    path = tmp_path / "model.onnx"
    export_onnx(module, input_shape, path, output_name=module.output_name)
    rng = np.random.default_rng(1)
    for batch in (1, 64):
        assert check_parity(module, path, rng.normal(size=(batch, *input_shape)).astype(np.float32)) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind


def test_signature_has_a_dynamic_batch_axis(tmp_path: Path) -> None:
    module = serving_module("regression", {"type": "mlp", "hidden": [8]}, [10], None)
    export_onnx(module, [10], tmp_path / "m.onnx", output_name="prediction")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("input", "prediction")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [10]
    assert session.run(None, {"input": np.zeros((7, 10), np.float32)})[0].shape == (7, 1)
