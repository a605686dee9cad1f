"""JSONL text: one ``{"text": ..., "label": ...}`` object per line (the label field may be named by ``target``)."""

from __future__ import annotations

import numpy as np
import orjson

from maas.datasets.labels import encode_labels, infer_task
from maas.datasets.schema import DatasetSchema, ParsedDataset
from maas.errors import InvalidDataset

DEFAULT_LABEL = "label"
TEXT_FIELD = "text"
Label = str | int | float | bool


def parse_jsonl(data: bytes, target: str | None, task: str | None) -> ParsedDataset:
    target = target or DEFAULT_LABEL
    if target == TEXT_FIELD:
        raise InvalidDataset("The label field cannot be the 'text' field itself.")
    texts: list[str] = []
    labels: list[Label] = []
    for number, line in enumerate(_lines(data), start=1):
        if line.strip():
            text, label = _row(line, number, target)
            texts.append(text)
            labels.append(label)
    if not texts:
        raise InvalidDataset("The JSONL file has no rows.")
    label_array = _label_array(labels)
    task = infer_task(label_array, task)
    y, classes = encode_labels(label_array, task)
    schema = DatasetSchema(task=task, modality="text", format="jsonl", n_rows=len(texts), target=target,
                           features=[TEXT_FIELD], input_shape=[], classes=classes)
    return ParsedDataset(schema=schema, X=None, texts=texts, y=y)


def _lines(data: bytes) -> list[str]:
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"The JSONL is not UTF-8 text (invalid byte at offset {exc.start}).") from exc


def _row(line: str, number: int, target: str) -> tuple[str, Label]:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidDataset(f"Line {number} of the JSONL is not valid JSON.") from exc
    if not isinstance(row, dict) or not isinstance(row.get(TEXT_FIELD), str) or target not in row:
        raise InvalidDataset(f"Line {number} must be an object with a string 'text' and a {target!r}.")
    label = row[target]
    if not isinstance(label, str | int | float):  # bool is an int
        raise InvalidDataset(f"Line {number}: the {target!r} must be a string, number or boolean.")
    return row[TEXT_FIELD], label


def _label_array(labels: list[Label]) -> np.ndarray:
    """All booleans stay booleans, all numbers become numbers; any mix is read as text labels."""
    if all(isinstance(v, bool) for v in labels):
        return np.asarray(labels, dtype=bool)
    if not any(isinstance(v, str | bool) for v in labels):
        return np.asarray(labels, dtype=np.float64)
    return np.asarray([str(v) for v in labels], dtype=str)
