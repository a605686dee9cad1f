"""JSONL text datasets: one object per line with a string text and a label."""

from __future__ import annotations

import numpy as np
import pytest

from maas.datasets.parsers import parse_dataset
from maas.errors import InvalidDataset
from tests.datasets.files import jsonl_bytes


def test_text_classification() -> None:
    data = jsonl_bytes([{"text": "good movie", "label": "pos"}, {"text": "bad", "label": "neg"},
                        {"text": "ok", "label": "pos", "extra": 1}])
    parsed = parse_dataset(b"\n" + data + b"\n\n", "jsonl")
    s = parsed.schema
    assert (s.task, s.modality, s.format, s.features, s.input_shape, s.classes, s.n_rows, s.target) == (
        "classification", "text", "jsonl", ["text"], [], ["neg", "pos"], 3, "label")
    assert parsed.texts == ["good movie", "bad", "ok"] and parsed.X is None and parsed.y.tolist() == [1, 0, 1]


@pytest.mark.parametrize(("labels", "task", "classes"), [
    ([1, 0, 1, 0], "classification", [0, 1]),
    ([True, False, True, False], "classification", [False, True]),
    ([1, "b", 1, "b"], "classification", ["1", "b"]),
    ([0.5, 1.25, 2.0, 3.75], "regression", None),
])
def test_label_types(labels: list[object], task: str, classes: list[object] | None) -> None:
    parsed = parse_dataset(jsonl_bytes([{"text": "t", "label": v} for v in labels]), "jsonl")
    assert parsed.schema.task == task and parsed.schema.classes == classes
    if task == "regression":
        assert parsed.y.dtype == np.float32 and parsed.y.tolist() == labels


def test_caller_names_the_label_field() -> None:
    parsed = parse_dataset(jsonl_bytes([{"text": "a", "stars": 1}, {"text": "b", "stars": 5}]), "jsonl",
                           target="stars")
    assert parsed.schema.target == "stars" and parsed.schema.classes == [1, 5]


def test_byte_order_mark_is_ignored() -> None:
    data = "\ufeff".encode() + jsonl_bytes([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    assert parse_dataset(data, "jsonl").schema.n_rows == 2


@pytest.mark.parametrize(("data", "target", "needle"), [
    (b'{"text": "a", "label": 1}\n[1, 2]\n', None, "line 2 must be an object"),
    (b'{"text": "a"}\n', None, "line 1"),
    (b'{"label": "x"}\n', None, "string 'text'"),
    (b'{"text": 3, "label": "x"}\n', None, "string 'text'"),
    (b'{"text": "a", "label": "x"}\n{not json\n', None, "line 2 of the jsonl is not valid json"),
    (b'{"text": "a", "label": null}\n', None, "string, number or boolean"),
    (b'{"text": "a", "label": [1]}\n', None, "string, number or boolean"),
    (b'{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', None, "two distinct classes"),
    (b'{"text": "a", "label": "x"}\n', "text", "cannot be the 'text'"),
    (b'{"text": "\xff", "label": "x"}\n', None, "utf-8"),
    (b'"just a string"\n', None, "line 1"),
])
def test_bad_jsonl(data: bytes, target: str | None, needle: str) -> None:
    with pytest.raises(InvalidDataset) as caught:
        parse_dataset(data, "jsonl", target=target)
    assert needle in caught.value.message.lower()
