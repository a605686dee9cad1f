from __future__ import annotations

import torch
from torch import nn

from maas.training.early_stopping import EarlyStopper
from maas.training.spec import EarlyStopping


def module_with(value: float) -> nn.Linear:
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best() -> None:
    stopper = EarlyStopper(EarlyStopping(patience=2))
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7], start=1):
        assert not stopper.should_stop
        stopper.update(epoch, {"val_loss": loss}, module_with(float(epoch)))
    assert stopper.should_stop and stopper.best_epoch == 2
    target = module_with(0.0)
    stopper.restore_best(target)
    assert target.weight.item() == 2.0


def test_maximises_accuracy_and_honours_min_delta() -> None:
    stopper = EarlyStopper(EarlyStopping(patience=1, metric="val_accuracy", min_delta=0.05))
    stopper.update(1, {"val_accuracy": 0.80}, module_with(1.0))
    stopper.update(2, {"val_accuracy": 0.82}, module_with(2.0))  # not better by min_delta
    assert stopper.should_stop and stopper.best_epoch == 1


def test_state_round_trip() -> None:
    stopper = EarlyStopper(EarlyStopping(patience=3))
    stopper.update(1, {"val_loss": 0.3}, module_with(1.0))
    stopper.update(2, {"val_loss": 0.4}, module_with(2.0))
    copy = EarlyStopper(EarlyStopping(patience=3))
    copy.load_state_dict(stopper.state_dict())
    assert (copy.best_score, copy.best_epoch, copy.bad_epochs) == (0.3, 1, 1)


def test_disabled_tracks_nothing() -> None:
    stopper = EarlyStopper(None)
    stopper.update(1, {"val_loss": 0.3}, module_with(1.0))
    assert not stopper.should_stop and stopper.best_state is None
