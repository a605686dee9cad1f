from __future__ import annotations

import json
import math

import numpy as np
import pytest

from maas.training.metrics import classification_metrics, epoch_metrics, regression_metrics, roc_auc


def test_binary_classification() -> None:
    y = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])  # one false positive
    m = classification_metrics(y, probabilities)
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["precision_macro"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["roc_auc"] == 1.0  # every positive scores above every negative
    json.dumps(m)


def test_multiclass_auc_and_a_class_missing_from_the_split() -> None:
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    assert roc_auc(np.array([0, 1, 2]), probabilities) == 1.0
    m = classification_metrics(np.array([0, 1, 1]), probabilities)
    assert m["roc_auc"] is None  # class 2 absent: one-vs-rest AUC is undefined
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_regression() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [4.0]]))
    assert m["mse"] == pytest.approx(1 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["r2"] == pytest.approx(1 - 1 / 2)  # residual SS 1, total SS 2
    assert regression_metrics(np.array([2.0, 2.0]), np.array([1.0, 3.0]))["r2"] is None


def test_epoch_metrics_are_plain_floats() -> None:
    assert epoch_metrics("classification", np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])) == {
        "accuracy": 0.5, "f1_macro": pytest.approx(1 / 3)}
    assert set(epoch_metrics("regression", np.array([1.0, 2.0]), np.array([[1.0], [2.0]]))) == {"r2", "rmse", "mae"}
