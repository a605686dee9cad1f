from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from maas.datasets.schema import ParsedDataset
from maas.errors import InvalidSpec
from maas.training import trainer
from maas.training.checkpoint import CheckpointMismatch
from maas.training.devices import resolve_device
from maas.training.spec import TrainSpec
from maas.training.trainer import EpochReport, NonFiniteLoss, TrainingCancelled, TrainResult, train

SpecFactory = Callable[..., TrainSpec]


def without_timings(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def assert_same_result(a: TrainResult, b: TrainResult) -> None:
    assert len(a.history) == len(b.history)
    for entry_a, entry_b in zip(without_timings(a.history), without_timings(b.history), strict=True):
        assert entry_a == pytest.approx(entry_b, abs=1e-6)
    assert a.metrics.keys() == b.metrics.keys()
    for key, value in a.metrics.items():
        assert value == (pytest.approx(b.metrics[key], abs=1e-6) if isinstance(value, float) else b.metrics[key])
    assert a.state_dict.keys() == b.state_dict.keys()
    for key, value in a.state_dict.items():
        torch.testing.assert_close(value, b.state_dict[key], atol=1e-6, rtol=0)


def test_result_shape(iris: ParsedDataset, make_spec: SpecFactory) -> None:
    reports: list[EpochReport] = []
    result = train(iris, make_spec(), checkpoint_path=None, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3] and {r.epochs for r in reports} == {3}
    assert result.epochs_run == 3 and len(result.history) == 3 and not result.stopped_early
    assert set(result.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr",
                                      "seconds"}
    json.dumps({"history": result.history, "metrics": result.metrics, "architecture": result.architecture})
    assert {"accuracy", "f1_macro", "roc_auc", "confusion_matrix"} <= result.metrics.keys()
    assert result.device == "cpu" and not result.serving_module.training
    assert result.state_dict.keys() == result.serving_module.state_dict().keys()
    assert iris.X is not None
    probabilities = result.serving_module(torch.as_tensor(iris.X[:5]))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(5))


def test_regression_predicts_in_target_units(diabetes: ParsedDataset, make_spec: SpecFactory) -> None:
    result = train(diabetes, make_spec("diabetes", epochs=5), checkpoint_path=None)
    assert {"mse", "rmse", "mae", "r2"} <= result.metrics.keys() and "val_r2" in result.history[0]
    assert diabetes.X is not None
    predictions = result.serving_module(torch.as_tensor(diabetes.X)).detach()
    assert predictions.shape == (len(diabetes.X), 1)
    assert abs(predictions.mean().item() - float(diabetes.y.mean())) < 0.3 * float(diabetes.y.std())


def test_the_same_seed_gives_the_same_run(iris: ParsedDataset, make_spec: SpecFactory) -> None:
    spec = make_spec(architecture={"dropout": 0.3})
    assert_same_result(train(iris, spec, checkpoint_path=None), train(iris, spec, checkpoint_path=None))


def test_another_seed_gives_another_run(iris: ParsedDataset, make_spec: SpecFactory) -> None:
    a = train(iris, make_spec(seed=0), checkpoint_path=None)
    b = train(iris, make_spec(seed=1), checkpoint_path=None)
    assert without_timings(a.history) != without_timings(b.history)


@pytest.mark.parametrize("hyperparameters", [
    {"optimizer": "adamw", "schedule": "cosine"},
    {"optimizer": "sgd", "schedule": "one_cycle", "lr": 0.05, "grad_clip": 1.0},
    {"optimizer": "adam", "schedule": "step", "step_size": 1, "label_smoothing": 0.1},
])
def test_cancel_then_resume_equals_an_uninterrupted_run(iris: ParsedDataset, make_spec: SpecFactory,
                                                        tmp_path: Path, hyperparameters: dict[str, Any]) -> None:
    spec = make_spec(architecture={"dropout": 0.3}, epochs=4, **hyperparameters)
    uninterrupted = train(iris, spec, checkpoint_path=tmp_path / "a.ckpt")
    checkpoint = tmp_path / "b.ckpt"
    reports: list[EpochReport] = []
    with pytest.raises(TrainingCancelled):
        train(iris, spec, checkpoint_path=checkpoint, on_epoch=reports.append, should_stop=lambda: len(reports) >= 2)
    assert len(reports) == 2
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2  # only tensors and primitives inside
    resumed_reports: list[EpochReport] = []
    resumed = train(iris, spec, checkpoint_path=checkpoint, on_epoch=resumed_reports.append)
    assert [r.epoch for r in resumed_reports] == [3, 4]
    assert_same_result(uninterrupted, resumed)


def test_resuming_a_finished_run_returns_its_result(iris: ParsedDataset, make_spec: SpecFactory,
                                                    tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    first = train(iris, make_spec(), checkpoint_path=checkpoint)
    reports: list[EpochReport] = []
    again = train(iris, make_spec(), checkpoint_path=checkpoint, on_epoch=reports.append)
    assert reports == []
    assert_same_result(first, again)


def test_a_checkpoint_of_another_spec_is_refused(iris: ParsedDataset, make_spec: SpecFactory,
                                                 tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    train(iris, make_spec(epochs=1), checkpoint_path=checkpoint)
    with pytest.raises(CheckpointMismatch):
        train(iris, make_spec(epochs=1, lr=0.01), checkpoint_path=checkpoint)


def test_a_huge_learning_rate_is_reported_as_a_non_finite_loss(iris: ParsedDataset, make_spec: SpecFactory,
                                                               tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(NonFiniteLoss, match=r"loss became (NaN|infinite) at epoch 1; try a lower lr") as info:
        train(iris, make_spec(lr=1e30, optimizer="sgd"), checkpoint_path=checkpoint)
    assert info.value.code == "non_finite_loss"
    assert not checkpoint.exists()


def test_a_non_finite_loss_keeps_the_last_good_checkpoint(iris: ParsedDataset, make_spec: SpecFactory,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_epoch = trainer._train_one_epoch
    calls: list[int] = []

    def diverge_in_epoch_3(session: Any, poll: Any) -> float:
        calls.append(1)
        return real_epoch(session, poll) if len(calls) < 3 else float("nan")

    monkeypatch.setattr(trainer, "_train_one_epoch", diverge_in_epoch_3)
    checkpoint = tmp_path / "run.ckpt"
    snapshots: list[bytes] = []
    with pytest.raises(NonFiniteLoss, match="NaN at epoch 3"):
        train(iris, make_spec(epochs=4), checkpoint_path=checkpoint,
              on_epoch=lambda report: snapshots.append(checkpoint.read_bytes()))
    assert checkpoint.read_bytes() == snapshots[-1]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2


def test_cancel_between_epochs_keeps_the_checkpoint(iris: ParsedDataset, make_spec: SpecFactory,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "_STOP_POLL_SECONDS", 3600.0)  # only the check at the end of an epoch
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(TrainingCancelled, match="after epoch 1"):
        train(iris, make_spec(), checkpoint_path=checkpoint, should_stop=lambda: True)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1


def test_cancel_takes_effect_within_an_epoch(iris: ParsedDataset, make_spec: SpecFactory, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "_STOP_POLL_SECONDS", 0.0)
    reports: list[EpochReport] = []
    with pytest.raises(TrainingCancelled, match="during epoch 1"):
        train(iris, make_spec(), checkpoint_path=tmp_path / "run.ckpt", on_epoch=reports.append,
              should_stop=lambda: True)
    assert reports == [] and not (tmp_path / "run.ckpt").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either


def test_early_stopping_restores_the_best_epoch(iris: ParsedDataset, make_spec: SpecFactory) -> None:
    spec = make_spec(epochs=40, lr=0.05, early_stopping={"patience": 2, "metric": "val_loss"})
    result = train(iris, spec, checkpoint_path=None)
    assert result.stopped_early and result.epochs_run < 40
    best = min(result.history, key=lambda entry: entry["val_loss"])
    assert result.epochs_run - best["epoch"] == 2


def test_batch_norm_needs_two_rows_a_batch(iris: ParsedDataset, make_spec: SpecFactory) -> None:
    with pytest.raises(InvalidSpec, match="batch_size"):
        train(iris, make_spec(architecture={"batch_norm": True}, batch_size=1), checkpoint_path=None)


def test_devices() -> None:
    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        return
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InvalidSpec, match="no usable CUDA"):
        resolve_device("cuda:0")


def test_an_unreadable_checkpoint_is_refused(iris: ParsedDataset, make_spec: SpecFactory, tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatch, match="could not be read"):
        train(iris, make_spec(), checkpoint_path=checkpoint)


def test_a_checkpoint_holding_pickled_objects_is_refused(iris: ParsedDataset, make_spec: SpecFactory,
                                                          tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"
    torch.save({"format": "maas.checkpoint/v1", "payload": Path("/etc/passwd")}, checkpoint)
    with pytest.raises(CheckpointMismatch, match="could not be read"):
        train(iris, make_spec(), checkpoint_path=checkpoint)
