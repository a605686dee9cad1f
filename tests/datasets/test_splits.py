"""Train/validation/test splits: sizes, disjointness, stratification and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from maas.datasets.splits import split_indices, split_sizes
from maas.errors import InvalidSpec


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_fractions_of_the_whole_disjoint_and_complete(task: str) -> None:
    y = np.arange(200) % 4 if task == "classification" else np.linspace(0, 1, 200)
    train, val, test = split_indices(y, task, 0.1, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (140, 20, 40)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(200))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_same_seed_same_split_other_seed_other_split(task: str) -> None:
    y = np.arange(100) % 2
    first = split_indices(y, task, 0.1, 0.2, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, split_indices(y, task, 0.1, 0.2, seed=7), strict=True))
    assert not np.array_equal(first[2], split_indices(y, task, 0.1, 0.2, seed=8)[2])


def test_classification_is_stratified() -> None:
    y = np.array([0] * 150 + [1] * 50)
    _train, val, test = split_indices(y, "classification", 0.1, 0.2, seed=0)
    assert np.bincount(y[test]).tolist() == [30, 10] and np.bincount(y[val]).tolist() == [15, 5]


def test_rare_classes_fall_back_to_a_plain_shuffle() -> None:
    y = np.array([0] * 30 + [1])  # one row of class 1 cannot be stratified
    train, val, test = split_indices(y, "classification", 0.1, 0.2, seed=0)
    assert len(train) + len(val) + len(test) == 31


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_datasets(n: int) -> None:
    train, val, test = split_indices(np.arange(n) % 2, "classification", 0.1, 0.2, seed=0)
    assert len(train) >= 1 and len(train) + len(val) + len(test) == n


def test_large_seeds_are_accepted() -> None:
    split_indices(np.arange(20) % 2, "classification", 0.1, 0.2, seed=2**32 - 1)


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.2), (0.5, 0.5), (0.1, 1.0)])
def test_impossible_fractions(val: float, test: float) -> None:
    with pytest.raises(InvalidSpec):
        split_indices(np.arange(10) % 2, "classification", val, test, seed=0)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 10, 11, 33, 200, 1797])
@pytest.mark.parametrize(("val", "test"), [(0.1, 0.2), (0.5, 0.3), (0.01, 0.01), (0.0, 0.2), (0.3, 0.0)])
def test_split_sizes_predicts_what_split_indices_gives(n: int, val: float, test: float) -> None:
    for task, y in (("classification", np.arange(n) % 3), ("regression", np.linspace(0, 1, n))):
        if n == 0:
            continue  # sklearn cannot split nothing; split_sizes says (0, 0, 0)
        sizes = tuple(len(part) for part in split_indices(y, task, val, test, seed=1))
        assert split_sizes(n, val, test) == sizes, (task, n, val, test)
