"""Track the best epoch by one validation metric, and say when to stop.

The best weights are kept as a CPU copy so the end of training can restore them; all state round-trips through
a checkpoint (tensors and primitives only), so a resumed run stops at exactly the same epoch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from maas.training.spec import EarlyStopping


class EarlyStopper:
    """With ``config=None`` nothing is tracked and training runs every epoch, ending on the last weights."""

    def __init__(self, config: EarlyStopping | None) -> None:
        self.config = config
        self.best_score: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, entry: dict[str, float], module: nn.Module) -> None:
        """Record one epoch's history ``entry``; snapshot ``module`` if it is the best so far."""
        if self.config is None:
            return
        score = entry.get(self.config.metric)
        if score is not None and self._improves(score):
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        else:
            self.bad_epochs += 1

    @property
    def should_stop(self) -> bool:
        return self.config is not None and self.bad_epochs >= self.config.patience

    def restore_best(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def _improves(self, score: float) -> bool:
        if self.best_score is None:
            return True
        assert self.config is not None
        delta = self.config.min_delta
        return score < self.best_score - delta if self.config.minimize else score > self.best_score + delta

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], state["best_state"]
