"""CSV and Parquet: the same tables through both formats, and every way a table can be unusable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from maas.datasets.parsers import parse_dataset
from maas.errors import InvalidDataset
from tests.datasets.files import csv_bytes, parquet_bytes, table_bytes

FORMATS = ["csv", "parquet"]
SPECIES = ["x", "y", "x", "z", "y", "z"]
SPECIES_CLASSES = ["x", "y", "z"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_string_labels_are_sorted_classes(fmt: str) -> None:
    data = table_bytes(fmt, {"a": [1, 3, 5, 7, 9, 2], "b": [2.5, 4, 6, 8, 1, 2], "species": SPECIES})
    parsed = parse_dataset(data, fmt, target="species")
    s = parsed.schema
    assert (s.task, s.modality, s.format, s.target, s.features, s.input_shape, s.classes, s.n_rows) == (
        "classification", "tabular", fmt, "species", ["a", "b"], [2], SPECIES_CLASSES, 6)
    assert parsed.X is not None and parsed.X.dtype == np.float32 and parsed.X.shape == (6, 2)
    assert parsed.X[1].tolist() == [3.0, 4.0] and parsed.texts is None
    assert parsed.y.dtype == np.int64 and [SPECIES_CLASSES[i] for i in parsed.y] == SPECIES


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["target", "label", "y", "class", "Label"])
def test_default_target_column(fmt: str, name: str) -> None:
    parsed = parse_dataset(table_bytes(fmt, {name: [0, 1, 0, 1], "f": [1, 2, 3, 4]}), fmt)
    assert parsed.schema.target == name and parsed.schema.features == ["f"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_continuous_target_is_regression(fmt: str) -> None:
    n = 40
    parsed = parse_dataset(table_bytes(fmt, {"x": list(range(n)), "target": [i * 0.37 for i in range(n)]}), fmt)
    assert parsed.schema.task == "regression" and parsed.schema.classes is None
    assert parsed.y.dtype == np.float32 and parsed.y[2] == pytest.approx(0.74)


@pytest.mark.parametrize("fmt", FORMATS)
def test_integer_labels_with_few_values_are_classes(fmt: str) -> None:
    parsed = parse_dataset(table_bytes(fmt, {"x": list(range(30)), "label": [i % 3 for i in range(30)]}), fmt)
    assert parsed.schema.task == "classification" and parsed.schema.classes == [0, 1, 2]
    assert parsed.y.tolist()[:4] == [0, 1, 2, 0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_explicit_task_overrides_inference(fmt: str) -> None:
    data = table_bytes(fmt, {"x": list(range(30)), "label": [i % 3 for i in range(30)]})
    parsed = parse_dataset(data, fmt, task="regression")
    assert parsed.schema.task == "regression" and parsed.y.tolist()[:3] == [0.0, 1.0, 2.0]


def test_boolean_features_and_labels() -> None:
    parsed = parse_dataset(parquet_bytes({"on": [True, False, True], "label": [False, True, True]}), "parquet")
    assert parsed.schema.classes == [False, True] and parsed.X is not None and parsed.X[:, 0].tolist() == [1, 0, 1]


def test_dictionary_encoded_parquet_columns_are_decoded() -> None:
    table = pa.table({"f": [1.0, 2.0, 3.0], "label": pa.array(["b", "a", "b"]).dictionary_encode()})
    assert parse_dataset(parquet_bytes(table), "parquet").schema.classes == ["a", "b"]


def test_header_spaces_and_byte_order_mark_are_tolerated() -> None:
    parsed = parse_dataset("\ufeffa, b, label\n1, 2, x\n3, 4, y\n".encode(), "csv")
    assert parsed.schema.features == ["a", "b"] and parsed.schema.classes == ["x", "y"]


def test_quoted_commas_are_not_ragged() -> None:
    parsed = parse_dataset(b'a,label\n1,"x, big"\n2,y\n', "csv")
    assert parsed.schema.classes == ["x, big", "y"]


def test_float_labels_that_are_integers_are_int_classes() -> None:
    parsed = parse_dataset(csv_bytes({"a": [1, 2, 3, 4], "label": [1.0, 0.0, 1.0, 0.0]}), "csv")
    assert parsed.schema.classes == [0, 1] and all(isinstance(c, int) for c in parsed.schema.classes)


BAD_TABLES: list[tuple[str, dict[str, list[Any]], str | None, str]] = [
    ("no target column", {"a": [1, 2], "b": [3, 4]}, None, "target"),
    ("unknown target", {"a": [1, 2], "b": [3, 4]}, "zzz", "no target column 'zzz'"),
    ("only a target", {"label": [0, 1]}, None, "no feature columns"),
    ("categorical feature", {"colour": ["red", "blue"], "label": [0, 1]}, None, "'colour' is not numeric"),
    ("nan-only feature", {"a": [math.nan, math.nan], "label": [0, 1]}, None, "'a' is empty"),
    ("some missing features", {"a": [1.0, None, None, 2.0], "label": [0, 1, 0, 1]}, None, "'a' has 2 missing"),
    ("infinite feature", {"a": [1.0, math.inf], "label": [0, 1]}, None, "'a' has infinite"),
    ("beyond float32", {"a": [1.0, 1e300], "label": [0, 1]}, None, "float32"),
    ("missing label", {"a": [1, 2, 3], "label": ["x", None, "y"]}, None, "1 missing"),
    ("single class", {"a": [1, 2], "label": ["x", "x"]}, None, "two distinct classes"),
    ("regression on strings", {"a": [1, 2], "label": ["x", "y"]}, "label", "must be numeric"),
    ("infinite target", {"a": [1, 2, 3], "target": [math.inf, 3.5, 1.25]}, None, "infinite"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "columns", "target", "needle"), BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_tables(fmt: str, case: str, columns: dict[str, list[Any]], target: str | None, needle: str) -> None:
    task = "regression" if case == "regression on strings" else None
    with pytest.raises(InvalidDataset) as caught:
        parse_dataset(table_bytes(fmt, columns), fmt, target=target, task=task)
    assert needle.lower() in caught.value.message.lower()


@pytest.mark.parametrize(("data", "needle"), [
    (b"a,b,target\n", "no rows"),
    (b"\n\n", "empty"),
    (b"a,b,target\n1,2,3\n4,5\n", "line 3 of the csv has 2 fields"),
    (b"a,b,target\n1,2,3\n4,5,6,7\n", "line 3"),
    (b"a,b,target\n,1,x\n,2,y\n,3,x\n", "'a' is empty"),
    (b"a,target\n\xff\xfe,1\n", "utf-8"),
    (b"a,a,target\n1,2,x\n3,4,y\n", "unique"),
    (b"a,target\n1,x\n2,\n", "missing"),
    (b'a,target\n1,x\n2,y,\n', "line 3"),
    (b'"a\n', "malformed"),
])
def test_bad_csv(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidDataset) as caught:
        parse_dataset(data, "csv")
    assert needle in caught.value.message.lower()


def test_too_many_features() -> None:
    header = ",".join(f"f{i}" for i in range(100_001)) + ",label\n"
    with pytest.raises(InvalidDataset, match="features"):
        parse_dataset(header.encode() + b"0," * 100_001 + b"1\n", "csv")


def test_header_only_parquet() -> None:
    empty = pa.table({"a": pa.array([], pa.float64()), "label": pa.array([], pa.int64())})
    with pytest.raises(InvalidDataset, match="no rows"):
        parse_dataset(parquet_bytes(empty), "parquet")


@pytest.mark.parametrize("cut", [8, 100, -20])
def test_truncated_parquet(cut: int) -> None:
    data = parquet_bytes({"a": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    with pytest.raises(InvalidDataset, match="Parquet"):
        parse_dataset(data[:cut], "parquet")
