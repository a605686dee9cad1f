"""Task inference and label encoding, the rules every format shares."""

from __future__ import annotations

import numpy as np
import pytest

from maas.datasets.labels import encode_labels, infer_task
from maas.errors import InvalidDataset


@pytest.mark.parametrize(("labels", "task"), [
    (np.array(["a", "b", "a"]), "classification"),
    (np.array([True, False, True]), "classification"),
    (np.array([0, 1, 1, 0]), "classification"),  # binary even in a tiny file
    (np.arange(100) % 7, "classification"),
    (np.array([0.0, 1.0, 2.0] * 10), "classification"),
    (np.array([0.5, 1.0, 2.0] * 10), "regression"),  # one non-integer value makes them quantities
    (np.arange(100) % 60, "regression"),  # more than 50 distinct values
    (np.array([1, 2, 3, 4, 5, 6]), "regression"),  # every value distinct: not repeated enough to be classes
])
def test_inferred_task(labels: np.ndarray, task: str) -> None:
    assert infer_task(labels, None) == task


@pytest.mark.parametrize(("labels", "requested"), [
    (np.array(["a", "b"]), "regression"),
    (np.array([0, 1]), "clustering"),
    (np.array([0.0, np.inf]), None),
])
def test_refused_tasks(labels: np.ndarray, requested: str | None) -> None:
    with pytest.raises(InvalidDataset):
        infer_task(labels, requested)


def test_classes_are_sorted_json_ready_and_indexed() -> None:
    y, classes = encode_labels(np.array([3, 1, 3, 2], dtype=np.int32), "classification")
    assert classes == [1, 2, 3] and all(type(c) is int for c in classes)
    assert y.dtype == np.int64 and y.tolist() == [2, 0, 2, 1]


def test_too_many_classes() -> None:
    with pytest.raises(InvalidDataset, match="1001 classes"):
        encode_labels(np.arange(1001), "classification")


def test_regression_beyond_float32() -> None:
    with pytest.raises(InvalidDataset, match="float32"):
        encode_labels(np.array([1.0, 1e300]), "regression")
