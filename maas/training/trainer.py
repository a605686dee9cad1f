"""The pure trainer: a parsed dataset and a spec in, a trained serving module with its metrics out.

No database, no HTTP, no knowledge of jobs: the caller passes a checkpoint path (resumed from when it exists),
an ``on_epoch`` callback for progress and a ``should_stop`` predicate for cancellation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from maas.errors import MaasError
from maas.training.checkpoint import load_checkpoint, save_checkpoint
from maas.training.devices import resolve_device
from maas.training.metrics import classification_metrics, epoch_metrics, regression_metrics
from maas.training.optimization import current_lr
from maas.training.prepared_data import Split
from maas.training.session import TrainingSession, start_session
from maas.training.spec import TrainSpec, resolve_spec

if TYPE_CHECKING:
    from maas.datasets.schema import ParsedDataset

_EVAL_CHUNK = 8192  # rows per forward pass when evaluating; bounds memory on large splits
_STOP_POLL_SECONDS = 0.5  # should_stop may be a database read, so ask at most this often within an epoch


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_metrics: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    serving_module: nn.Module  # eval mode, on the CPU
    architecture: dict[str, Any]  # the document that rebuilds serving_module
    state_dict: dict[str, torch.Tensor]  # serving_module's, for safetensors
    metrics: dict[str, Any]  # test split
    history: list[dict[str, float]]
    epochs_run: int
    stopped_early: bool
    device: str


class TrainingCancelled(Exception):
    """``should_stop`` returned True; the last completed epoch is in the checkpoint."""


class NonFiniteLoss(MaasError):
    code = "non_finite_loss"


def train(data: ParsedDataset, spec: TrainSpec, *, checkpoint_path: Path | None, device: str = "cpu",
          on_epoch: Callable[[EpochReport], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train ``spec`` on ``data``, checkpointing every epoch; resume from ``checkpoint_path`` if it exists."""
    device = resolve_device(device)
    spec = resolve_spec(spec, data.schema)
    fingerprint = spec.model_dump_json(include={"dataset", "architecture", "hyperparameters"})
    session = start_session(data, spec, device)
    if checkpoint_path is not None and checkpoint_path.exists():
        session.resume(load_checkpoint(checkpoint_path, fingerprint))
    poll = _StopPoll(should_stop)
    while not session.finished:
        report = _run_epoch(session, poll)
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, session.checkpoint_state(fingerprint))
        if on_epoch is not None:
            on_epoch(report)
        if not session.finished and poll.ask():  # a cancel after the last epoch changes nothing
            raise TrainingCancelled(f"Training was cancelled after epoch {session.epoch}.")
    return _finish(session)


class _StopPoll:
    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.should_stop = should_stop
        self.last = time.monotonic()

    def ask(self) -> bool:
        self.last = time.monotonic()
        return self.should_stop is not None and self.should_stop()

    def due(self) -> bool:
        """Cheap enough to call every batch: consults ``should_stop`` only every few hundred milliseconds."""
        return time.monotonic() - self.last >= _STOP_POLL_SECONDS and self.ask()


def _run_epoch(session: TrainingSession, poll: _StopPoll) -> EpochReport:
    epoch, started = session.epoch + 1, time.perf_counter()
    train_loss = _train_one_epoch(session, poll)
    _check_finite("training", train_loss, epoch, session.hp.lr)
    val_loss, val_metrics = _validate(session, epoch)
    seconds = time.perf_counter() - started
    entry = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
             **{f"val_{k}": v for k, v in val_metrics.items()}, "lr": current_lr(session.optimizer),
             "seconds": seconds}
    session.history.append(entry)
    session.epoch = epoch
    session.stopper.update(epoch, entry, session.serving)
    session.stopped_early = session.stopper.should_stop and epoch < session.hp.epochs
    return EpochReport(epoch=epoch, epochs=session.hp.epochs, train_loss=train_loss, val_loss=val_loss,
                       val_metrics=val_metrics, seconds=seconds)


def _train_one_epoch(session: TrainingSession, poll: _StopPoll) -> float:
    session.serving.train()
    x, target = session.train_inputs, session.data.train.target
    total, rows = torch.zeros((), device=session.device), 0
    for idx in _batches(session, len(x)):
        loss = _step(session, x[idx], target[idx])
        total.add_(loss.detach(), alpha=len(idx))  # summed on the device: no sync per batch
        rows += len(idx)
        if poll.due():
            raise TrainingCancelled(f"Training was cancelled during epoch {session.epoch + 1}.")
    return float(total.item()) / rows


def _batches(session: TrainingSession, n: int) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=session.batches).to(session.device)
    size = session.batch_size
    for step in range(session.steps_per_epoch):
        yield order[step * size:(step + 1) * size]


def _step(session: TrainingSession, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """One optimizer step on a batch of standardised inputs."""
    network, optimizer, scaler = session.serving.network, session.optimizer, session.scaler
    with session.autocast():
        loss = _loss(session, network(xb), yb, train=True)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if session.hp.grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        nn.utils.clip_grad_norm_(network.parameters(), session.hp.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if session.schedule is not None:
        session.schedule.step()
    return loss


def _loss(session: TrainingSession, outputs: torch.Tensor, target: torch.Tensor, *, train: bool) -> torch.Tensor:
    if session.task == "regression":
        return nn.functional.mse_loss(outputs.float(), target)
    # Label smoothing regularises training only; validation reports the plain cross-entropy.
    smoothing = session.hp.label_smoothing if train else 0.0
    return nn.functional.cross_entropy(outputs.float(), target, label_smoothing=smoothing)


@torch.no_grad()
def _raw_outputs(session: TrainingSession, split: Split) -> torch.Tensor:
    session.serving.eval()
    network, standardize = session.serving.network, session.serving.standardize
    return torch.cat([network(standardize(chunk)).float() for chunk in split.x.split(_EVAL_CHUNK)])


def _validate(session: TrainingSession, epoch: int) -> tuple[float, dict[str, float]]:
    split = session.data.val
    raw = _raw_outputs(session, split)
    loss = float(_loss(session, raw, split.target, train=False).item())
    _check_finite("validation", loss, epoch, session.hp.lr)  # before the metrics, which refuse NaN outputs
    served = session.serving.head(raw).cpu().numpy()
    return loss, epoch_metrics(session.task, split.y, served)


def _check_finite(name: str, loss: float, epoch: int, lr: float) -> None:
    if not np.isfinite(loss):
        kind = "NaN" if np.isnan(loss) else "infinite"
        raise NonFiniteLoss(f"The {name} loss became {kind} at epoch {epoch}; try a lower lr "
                            f"(it was {lr:g}) or set grad_clip.")


def _finish(session: TrainingSession) -> TrainResult:
    session.stopper.restore_best(session.serving)
    served = session.serving.head(_raw_outputs(session, session.data.test)).cpu().numpy()
    y = session.data.test.y
    metrics = classification_metrics(y, served) if session.task == "classification" else regression_metrics(y, served)
    serving = session.serving.cpu().eval()
    return TrainResult(
        serving_module=serving, architecture=session.document,
        state_dict={k: v.detach().clone().contiguous() for k, v in serving.state_dict().items()},
        metrics=metrics, history=session.history, epochs_run=session.epoch,
        stopped_early=session.stopped_early, device=session.device,
    )
