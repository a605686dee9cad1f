"""Built-in datasets: shapes, labels, reproducible bytes and a faithful round trip."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from maas.datasets.builtin import BUILTIN_NAMES, builtin_file, load_builtin
from maas.datasets.parsers import parse_dataset
from maas.errors import DatasetNotFound

EXPECTED = {  # task, input_shape, classes, n_rows
    "digits": ("classification", [64], list(range(10)), 1797),
    "iris": ("classification", [4], ["setosa", "versicolor", "virginica"], 150),
    "wine": ("classification", [13], ["class_0", "class_1", "class_2"], 178),
    "breast_cancer": ("classification", [30], ["benign", "malignant"], 569),
    "diabetes": ("regression", [10], None, 442),
}


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_shapes_and_labels(name: str) -> None:
    task, input_shape, classes, n_rows = EXPECTED[name]
    parsed = load_builtin(name)
    s = parsed.schema
    assert (s.task, s.modality, s.format, s.input_shape, s.classes, s.n_rows) == (
        task, "tabular", "npz", input_shape, classes, n_rows)
    assert parsed.X is not None and parsed.X.shape == (n_rows, *input_shape) and parsed.X.dtype == np.float32
    assert len(s.features) == input_shape[0] and parsed.y.shape == (n_rows,)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_bytes_are_deterministic_and_round_trip(name: str) -> None:
    data, fmt = builtin_file(name)
    builtin_file.cache_clear()
    again, _ = builtin_file(name)
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(data).hexdigest()
    first = load_builtin(name)
    stored = parse_dataset(data, fmt, target=first.schema.target, task=first.schema.task)
    assert stored.schema == first.schema and np.array_equal(stored.y, first.y)


def test_digits_is_an_image_in_disguise() -> None:
    parsed = load_builtin("digits")
    assert parsed.schema.image_shape == [1, 8, 8] and parsed.schema.features[:2] == ["pixel_0", "pixel_1"]
    assert parsed.X is not None and parsed.X.max() == 16.0


def test_named_features_and_labels_match_sklearn() -> None:
    from sklearn.datasets import load_breast_cancer

    parsed, bunch = load_builtin("breast_cancer"), load_breast_cancer()
    assert parsed.schema.features == list(bunch.feature_names)
    labels = [parsed.schema.classes[i] for i in parsed.y]  # type: ignore[index]
    assert labels == [bunch.target_names[t] for t in bunch.target]


def test_unknown_builtin() -> None:
    with pytest.raises(DatasetNotFound):
        builtin_file("mnist")
