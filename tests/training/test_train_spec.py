from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from maas.datasets.schema import DatasetSchema
from maas.errors import InvalidSpec
from maas.training.architectures import build_network
from maas.training.sizing import estimate_parameters
from maas.training.spec import ArchitectureSpec, TrainSpec, resolve_architecture, resolve_spec


def schema(n_features: int = 4, task: str = "classification", modality: str = "tabular",
           image_shape: list[int] | None = None, input_shape: list[int] | None = None) -> DatasetSchema:
    return DatasetSchema(task=task, modality=modality, format="csv", n_rows=100, target="y",
                         features=[f"f{i}" for i in range(n_features)], input_shape=input_shape or [n_features],
                         classes=["a", "b", "c"] if task == "classification" else None, image_shape=image_shape)


def test_defaults() -> None:
    spec = TrainSpec(dataset="digits")
    hp = spec.hyperparameters
    assert (hp.epochs, hp.batch_size, hp.optimizer, hp.lr, hp.seed) == (30, None, "adamw", 1e-3, 0)
    assert hp.early_stopping is not None and (hp.early_stopping.patience, hp.early_stopping.metric) == (5, "val_loss")
    assert (hp.val_fraction, hp.test_fraction, hp.standardize, hp.amp) == (0.1, 0.2, True, True)
    assert spec.architecture.type == "auto" and spec.device == "auto" and spec.model is None
    assert (spec.export.onnx, spec.export.quantize, spec.export.max_accuracy_drop) == (True, [], 0.01)


def test_the_design_example_body_is_valid() -> None:
    TrainSpec.model_validate({
        "dataset": "digits", "model": "digits-mlp",
        "architecture": {"type": "mlp", "hidden": [256, 256], "dropout": 0.1},
        "hyperparameters": {"epochs": 30, "batch_size": 64, "optimizer": "adamw", "lr": 0.001,
                            "early_stopping": {"patience": 5, "metric": "val_loss"}, "seed": 0},
        "export": {"onnx": True, "quantize": ["dynamic"], "max_accuracy_drop": 0.01},
        "device": "auto"})


@pytest.mark.parametrize("body", [
    {"dataset": "x", "colour": "red"},
    {"dataset": "x", "architecture": {"hiden": [8]}},
    {"dataset": "x", "hyperparameters": {"epoch": 3}},
    {"dataset": "x", "hyperparameters": {"early_stopping": {"patience": 3, "wait": 1}}},
    {"dataset": "x", "export": {"format": "onnx"}},
])
def test_unknown_fields_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainSpec.model_validate(body)


@pytest.mark.parametrize("body", [
    {"hyperparameters": {"epochs": 1_000_000}},
    {"hyperparameters": {"batch_size": 10**7}},
    {"hyperparameters": {"lr": 0}},
    {"hyperparameters": {"val_fraction": 0.9}},
    {"architecture": {"type": "mlp", "hidden": [100_000]}},
    {"architecture": {"type": "mlp", "hidden": [8] * 17}},
    {"architecture": {"type": "mlp", "hidden": [8192] * 16}},  # widths in range, but ~1e9 parameters
    {"architecture": {"type": "resnet", "channels": [1024] * 8, "blocks": 8}},
    {"architecture": {"type": "cnn", "kernel_size": 99}},
    {"export": {"quantize": ["dynamic"], "onnx": False}},
    {"export": {"quantize": ["dynamic", "dynamic"]}},
    {"export": {"quantize": ["int4"]}},
    {"device": "tpu"},
    {"device": "cuda:one"},
])
def test_absurd_or_inconsistent_values_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TrainSpec.model_validate({"dataset": "x", **body})


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_device_names(device: str) -> None:
    assert TrainSpec(dataset="x", device=device).device == device


def test_auto_is_an_mlp_with_defaults_for_tabular_data() -> None:
    arch = resolve_architecture(ArchitectureSpec(), schema())
    assert (arch.type, arch.hidden, arch.dropout, arch.batch_norm) == ("mlp", [256, 256], 0.1, True)
    assert arch.channels is None and arch.fc is None


def test_auto_is_a_cnn_for_images() -> None:
    arch = resolve_architecture(ArchitectureSpec(), schema(modality="image", input_shape=[1, 8, 8]))
    assert (arch.type, arch.channels, arch.kernel_size, arch.pooling) == ("cnn", [32, 64], 3, "max")


def test_a_cnn_fits_tabular_rows_that_are_images() -> None:
    arch = resolve_architecture(ArchitectureSpec(type="cnn"), schema(64, image_shape=[1, 8, 8]))
    assert arch.type == "cnn"


@pytest.mark.parametrize("kind", ["cnn", "resnet"])
def test_image_networks_need_images(kind: str) -> None:
    with pytest.raises(InvalidSpec, match="needs images"):
        resolve_architecture(ArchitectureSpec.model_validate({"type": kind}), schema())


def test_text_comes_later() -> None:
    with pytest.raises(InvalidSpec, match="Text models come later"):
        resolve_architecture(ArchitectureSpec(), schema(modality="text", input_shape=[]))


def test_fields_the_type_does_not_use_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="linear does not use hidden"):
        resolve_architecture(ArchitectureSpec(type="linear", hidden=[8]), schema())


def test_explicit_values_win_over_defaults() -> None:
    arch = resolve_architecture(ArchitectureSpec(hidden=[16], dropout=0.0, batch_norm=False), schema())
    assert (arch.hidden, arch.dropout, arch.batch_norm) == ([16], 0.0, False)


def test_parameter_cap_uses_the_dataset_width() -> None:
    huge_input = schema(200_000)
    with pytest.raises(InvalidSpec, match="parameters"):
        resolve_architecture(ArchitectureSpec(type="mlp", hidden=[512]), huge_input)


def test_early_stopping_metric_must_suit_the_task() -> None:
    spec = TrainSpec.model_validate({"dataset": "x", "hyperparameters": {"early_stopping": {"metric": "val_accuracy"}}})
    with pytest.raises(InvalidSpec, match="val_accuracy"):
        resolve_spec(spec, schema(task="regression"))
    assert resolve_spec(spec, schema()).architecture.type == "mlp"


@pytest.mark.parametrize(("metric", "mode", "minimize"), [
    ("val_loss", "auto", True), ("val_accuracy", "auto", False), ("val_r2", "auto", False),
    ("val_rmse", "auto", True), ("val_accuracy", "min", True),
])
def test_early_stopping_direction(metric: str, mode: str, minimize: bool) -> None:
    spec = TrainSpec.model_validate({"dataset": "x", "hyperparameters": {"early_stopping": {"metric": metric,
                                                                                             "mode": mode}}})
    assert spec.hyperparameters.early_stopping is not None
    assert spec.hyperparameters.early_stopping.minimize is minimize


@pytest.mark.parametrize(("arch", "input_shape", "image_shape"), [
    ({"type": "linear"}, [30], None),
    ({"type": "mlp", "hidden": [32, 16], "batch_norm": True}, [30], None),
    ({"type": "mlp", "hidden": [], "batch_norm": False}, [30], None),
    ({"type": "cnn", "channels": [8, 16], "fc": [32]}, [64], [1, 8, 8]),
    ({"type": "cnn", "channels": [4], "batch_norm": False, "kernel_size": 5}, [3, 6, 6], [3, 6, 6]),
    ({"type": "resnet", "channels": [8, 16], "blocks": 2, "fc": [10]}, [64], [1, 8, 8]),
    ({"type": "resnet", "channels": [8, 8]}, [2, 2, 2], [2, 2, 2]),
])
def test_the_size_estimate_is_the_real_parameter_count(arch: dict[str, Any], input_shape: list[int],
                                                         image_shape: list[int] | None) -> None:
    modality = "image" if image_shape else "tabular"
    resolved = resolve_architecture(ArchitectureSpec.model_validate(arch),
                                    schema(modality=modality, input_shape=input_shape, image_shape=image_shape))
    network = build_network(resolved, input_shape, 3, image_shape)
    assert estimate_parameters(resolved, input_shape, 3, image_shape) == sum(p.numel() for p in network.parameters())
