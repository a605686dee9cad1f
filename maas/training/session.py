"""Everything one training run mutates, built from the spec, and its round trip through a checkpoint.

A :class:`TrainingSession` is what the epoch loop in :mod:`maas.training.trainer` drives; ``checkpoint_state`` and
``resume`` cover every part of it (weights, optimizer, schedule, loss scaler, early stopping, all RNG streams),
which is what makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from maas.errors import InvalidSpec
from maas.training.architectures import architecture_document, build_network
from maas.training.checkpoint import capture_rng, restore_rng
from maas.training.early_stopping import EarlyStopper
from maas.training.optimization import build_optimizer, build_schedule
from maas.training.prepared_data import PreparedData, prepare_data
from maas.training.serving import ServingModule
from maas.training.spec import HyperParameters, TrainSpec, image_shape_of, output_count

if TYPE_CHECKING:
    from maas.datasets.schema import ParsedDataset


DEFAULT_BATCH_SIZE = 64
MIN_STEPS_PER_EPOCH = 10


@dataclass
class TrainingSession:
    hp: HyperParameters
    task: str
    device: str
    data: PreparedData
    serving: ServingModule
    document: dict[str, Any]
    optimizer: torch.optim.Optimizer
    schedule: LRScheduler | None
    scaler: torch.amp.GradScaler
    stopper: EarlyStopper
    batches: torch.Generator  # draws the batch order; kept on the CPU so the order is the same on any device
    batch_size: int
    amp_dtype: torch.dtype | None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def finished(self) -> bool:
        return self.epoch >= self.hp.epochs or self.stopped_early

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.data.train.x), self.batch_size)

    @functools.cached_property
    def train_inputs(self) -> torch.Tensor:
        """The training split standardised once (the statistics are fixed): per batch it cost two more ops a step."""
        with torch.no_grad():
            return self.serving.standardize(self.data.train.x)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def checkpoint_state(self, fingerprint: str) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint, "epoch": self.epoch, "history": self.history,
            "stopped_early": self.stopped_early, "model": self.serving.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "stopper": self.stopper.state_dict(), "rng": capture_rng(self.batches, self.device),
        }

    def resume(self, state: dict[str, Any]) -> None:
        self.serving.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.stopper.load_state_dict(state["stopper"])
        restore_rng(state["rng"], self.batches, self.device)
        self.epoch, self.history, self.stopped_early = state["epoch"], state["history"], state["stopped_early"]


def start_session(data: ParsedDataset, spec: TrainSpec, device: str) -> TrainingSession:
    """Seed every RNG, split and upload the data, build the network and its optimizer (``spec`` resolved)."""
    hp, arch, task = spec.hyperparameters, spec.architecture, data.schema.task
    torch.manual_seed(hp.seed)
    np.random.seed(hp.seed)
    image_shape = image_shape_of(data.schema) if arch.type in ("cnn", "resnet") else None
    prepared = prepare_data(data, hp, image_shape, device)
    input_shape, n_outputs = list(prepared.train.x.shape[1:]), output_count(data.schema)
    serving = ServingModule(build_network(arch, input_shape, n_outputs, image_shape), input_shape, task)
    serving.set_statistics(prepared.feature_mean, prepared.feature_std, prepared.target_stats)
    serving.to(device)
    batch_size = resolve_batch_size(hp.batch_size, len(prepared.train.x))
    _check_batch_norm(serving, batch_size)
    optimizer = build_optimizer(serving.network, hp)
    amp_dtype = _amp_dtype(hp, device)
    return TrainingSession(
        hp=hp, task=task, device=device, data=prepared, serving=serving,
        document=architecture_document(arch, input_shape, n_outputs, image_shape, task, prepared.preprocessing),
        optimizer=optimizer, schedule=build_schedule(optimizer, hp, steps_per_epoch(len(prepared.train.x), batch_size)),
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        stopper=EarlyStopper(hp.early_stopping), batches=torch.Generator().manual_seed(hp.seed),
        batch_size=batch_size, amp_dtype=amp_dtype,
    )


def resolve_batch_size(requested: int | None, n_train: int) -> int:
    """The requested size, or by default 64 shrunk so a small dataset still gets ~10 optimizer steps an epoch."""
    if requested is not None:
        return requested
    return max(8, min(DEFAULT_BATCH_SIZE, n_train // MIN_STEPS_PER_EPOCH))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches, plus the remainder unless it is a single row (batch norm cannot train on one row)."""
    return n_train // batch_size + (1 if n_train % batch_size >= 2 else 0)


def _check_batch_norm(module: nn.Module, batch_size: int) -> None:
    if batch_size < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        raise InvalidSpec("batch_size must be at least 2 for a network with batch normalisation.")


def _amp_dtype(hp: HyperParameters, device: str) -> torch.dtype | None:
    """bfloat16 where the GPU has it (no loss scaling needed), else float16 with a scaler; never on CPU."""
    if not hp.amp or not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
