"""Deterministic train/validation/test splits, stratified for classification when every class allows it.

The fractions are of the whole dataset: 0.1 and 0.2 of 200 rows give 140/20/40.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split

from maas.errors import InvalidSpec

_SEED_RANGE = 2**32  # what sklearn's random_state accepts


def split_indices(y: np.ndarray, task: str, val_fraction: float, test_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row indices (train, val, test); the same inputs always give the same split."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InvalidSpec("val_fraction and test_fraction must be in [0, 1) and leave rows to train on.")
    index = np.arange(len(y))
    train_val, test = _split(index, y, test_fraction, task, seed)
    relative_val = val_fraction / (1.0 - test_fraction)
    train, val = _split(train_val, y[train_val], relative_val, task, seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)


def split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """The (train, val, test) row counts ``split_indices`` gives ``n_rows`` rows, without splitting anything.

    sklearn rounds a held-out part up (``ceil(fraction * n)``) whether it stratifies or not, so the sizes depend
    on the count alone: a job can be refused at submit time when a split would come out empty.
    """
    n_test = _held_out(n_rows, test_fraction)
    rest = n_rows - n_test
    n_val = _held_out(rest, val_fraction / (1.0 - test_fraction))
    return rest - n_val, n_val, n_test


def _held_out(n: int, fraction: float) -> int:
    return 0 if fraction <= 0 or n < 2 else math.ceil(fraction * n)


def _split(index: np.ndarray, y: np.ndarray, fraction: float, task: str, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0 or len(index) < 2:
        return index, index[:0]
    if _held_out(len(index), fraction) >= len(index):  # sklearn would refuse: the caller finds no rows to train on
        return index[:0], index
    stratify = y if task == "classification" and _stratifiable(y, fraction) else None
    first, second = train_test_split(index, test_size=fraction, random_state=seed % _SEED_RANGE, stratify=stratify)
    return np.asarray(first), np.asarray(second)


def _stratifiable(y: np.ndarray, fraction: float) -> bool:
    """sklearn refuses to stratify unless each class has two rows and each side can hold one of every class."""
    counts = np.unique(y, return_counts=True)[1]
    n_held_out = int(np.ceil(fraction * len(y)))
    return bool(counts.min() >= 2 and n_held_out >= len(counts) and len(y) - n_held_out >= len(counts))
