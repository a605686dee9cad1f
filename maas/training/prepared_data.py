"""Split a parsed dataset, fit standardisation on the train split, and put every split on the device once.

The trainer then batches by indexing these tensors: no DataLoader, no per-sample Python work. Features stay
raw on the device because :class:`ServingModule` standardises them itself, in training exactly as in serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from maas.datasets.splits import split_indices
from maas.errors import InvalidSpec
from maas.training.spec import MIN_TRAIN_ROWS, HyperParameters
from maas.training.standardize import feature_statistics, target_statistics

if TYPE_CHECKING:
    from maas.datasets.schema import ParsedDataset


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # raw features, on the device
    target: torch.Tensor  # what the loss compares with: class indices, or standardised regression values
    y: np.ndarray  # the original labels or values, for metrics


@dataclass(frozen=True)
class PreparedData:
    train: Split
    val: Split
    test: Split
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_stats: tuple[float, float] | None  # regression only: (mean, std) of the train targets
    preprocessing: dict[str, str]


def prepare_data(data: ParsedDataset, hp: HyperParameters, image_shape: list[int] | None,
                 device: str) -> PreparedData:
    if data.X is None:
        raise InvalidSpec("This dataset has no numeric features (text models come later).")
    task = data.schema.task
    train_idx, val_idx, test_idx = split_indices(data.y, task, hp.val_fraction, hp.test_fraction, hp.seed)
    if len(train_idx) < MIN_TRAIN_ROWS or len(val_idx) < 1 or len(test_idx) < 1:
        raise InvalidSpec("The dataset is too small to split into train, validation and test sets.")
    x = np.asarray(data.X, dtype=np.float32)
    mean, std, mode = feature_statistics(x[train_idx], image_shape, hp.standardize)
    target_stats = target_statistics(data.y[train_idx], hp.standardize) if task == "regression" else None
    train, val, test = (_to_device(x, data.y, idx, target_stats, device) for idx in (train_idx, val_idx, test_idx))
    preprocessing = {"features": mode, "target": "standardize" if target_stats and hp.standardize else "none"}
    return PreparedData(train=train, val=val, test=test, feature_mean=mean, feature_std=std,
                        target_stats=target_stats, preprocessing=preprocessing)


def _to_device(x: np.ndarray, y: np.ndarray, idx: np.ndarray, target_stats: tuple[float, float] | None,
               device: str) -> Split:
    labels = np.asarray(y)[idx]
    if target_stats is None:
        target = torch.as_tensor(labels.astype(np.int64))
    else:
        values = (labels.astype(np.float64).reshape(-1) - target_stats[0]) / target_stats[1]
        target = torch.as_tensor(values.astype(np.float32)).unsqueeze(1)
    return Split(x=torch.as_tensor(x[idx]).to(device), target=target.to(device), y=labels)
