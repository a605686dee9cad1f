"""The per-epoch macro F1 is sklearn's, without sklearn's per-call validation cost."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from maas.training.metrics import macro_f1


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 8, size=200))  # labels only predicted, too

    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_macro_f1_of_a_class_never_hit_is_zero() -> None:
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 0, 0])) == pytest.approx(
        f1_score([0, 0, 1], [0, 0, 0], average="macro", zero_division=0))
