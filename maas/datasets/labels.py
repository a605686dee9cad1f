"""Task inference and label encoding, shared by every format: raw labels in, class indices or float targets out."""

from __future__ import annotations

from typing import Any

import numpy as np

from maas.datasets.limits import MAX_CLASSES
from maas.errors import InvalidDataset

TASKS = ("classification", "regression")
SMALL_CLASS_COUNT = 50
_EXACT_INTEGERS = 2.0**53  # beyond this a float64 no longer tells integers apart


def check_task(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise InvalidDataset(f"The task must be 'classification' or 'regression', not {task!r}.")


def as_label_array(values: np.ndarray) -> np.ndarray:
    """Labels as bool, number or str values (bytes are decoded); dates, objects and records are refused."""
    if values.dtype.kind in "biufU":
        return values
    if values.dtype.kind == "S":
        try:
            return np.asarray([v.decode("utf-8") for v in values.tolist()], dtype=str)
        except UnicodeDecodeError as exc:
            raise InvalidDataset("The labels are bytes that are not UTF-8 text.") from exc
    raise InvalidDataset(f"Labels must be numbers, booleans or strings, not {values.dtype}.")


def infer_task(labels: np.ndarray, requested: str | None) -> str:
    """Strings and bools are classes; integer-valued numbers with few distinct values are classes; else values."""
    check_task(requested)
    numeric = labels.dtype.kind in "iuf"
    if requested == "regression" and not numeric:
        raise InvalidDataset("A regression target must be numeric; this one holds strings or booleans.")
    if requested is not None:
        return requested
    if not numeric:
        return "classification"
    values = _finite(labels)
    distinct = len(np.unique(values))
    # Two values are a binary label even in a tiny file; more need to repeat to look like classes.
    few = distinct <= 2 or (distinct <= SMALL_CLASS_COUNT and distinct < len(values) / 2)
    return "classification" if _integral(values) and few else "regression"


def encode_labels(labels: np.ndarray, task: str) -> tuple[np.ndarray, list[Any] | None]:
    """Regression: float32 targets and no classes. Classification: int64 indices into the sorted classes."""
    if task == "regression":
        return _targets(labels), None
    return _class_indices(labels)


def _targets(labels: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        y = _finite(labels).astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise InvalidDataset("The target has values beyond the float32 range.")
    return y


def _class_indices(labels: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    if labels.dtype.kind in "iuf":
        values = _finite(labels)
        if labels.dtype.kind == "f" and _integral(values):
            labels = values.astype(np.int64)  # 1.0 and 1 are the same class, reported as 1
    classes, indices = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise InvalidDataset("A classification target needs at least two distinct classes.")
    if len(classes) > MAX_CLASSES:
        raise InvalidDataset(f"The target has {len(classes)} classes; at most {MAX_CLASSES} are supported.")
    return indices.reshape(-1).astype(np.int64), [_plain(c) for c in classes]


def _finite(labels: np.ndarray) -> np.ndarray:
    values = labels.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise InvalidDataset(f"The target has {bad} missing or infinite values.")
    return values


def _integral(values: np.ndarray) -> bool:
    return bool(np.all(np.abs(values) < _EXACT_INTEGERS) and np.all(np.equal(np.mod(values, 1), 0)))


def _plain(value: Any) -> Any:
    """JSON-ready python scalars (numpy's are not)."""
    return value.item() if isinstance(value, np.generic) else value
