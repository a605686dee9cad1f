"""Optimizer and learning-rate schedule from :class:`HyperParameters`.

Every schedule is stepped once per batch (the step schedule's ``step_size`` is converted from epochs to
batches), so one code path drives them all and a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR

from maas.training.spec import HyperParameters


def build_optimizer(network: nn.Module, hp: HyperParameters) -> torch.optim.Optimizer:
    params = network.parameters()
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)


def build_schedule(optimizer: torch.optim.Optimizer, hp: HyperParameters, steps_per_epoch: int) -> LRScheduler | None:
    total = hp.epochs * steps_per_epoch
    if hp.schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=total)
    if hp.schedule == "step":
        return StepLR(optimizer, step_size=hp.step_size * steps_per_epoch, gamma=hp.gamma)
    if hp.schedule == "one_cycle":
        return OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total)
    return None


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
