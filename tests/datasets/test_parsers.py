"""The entry points: format detection, dispatch, re-parsing a stored file, and never anything but a 422."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from maas.datasets.parsers import SUPPORTED_FORMATS, detect_format, parse_dataset
from maas.errors import InvalidDataset
from tests.datasets.files import csv_bytes, jsonl_bytes, npz_bytes, parquet_bytes

TABLE: dict[str, list[Any]] = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "label": ["p", "q", "p", "q"]}
FILES = {
    "csv": csv_bytes(TABLE),
    "parquet": parquet_bytes(TABLE),
    "npz": npz_bytes(X=np.ones((4, 2, 3)), y=np.array([0, 1, 0, 1])),
    "jsonl": jsonl_bytes([{"text": "t", "label": v} for v in "pqpq"]),
}


@pytest.mark.parametrize(("name", "data", "fmt"), [
    ("d.csv", b"a", "csv"), ("D.PARQUET", b"", "parquet"), ("d.pq", b"", "parquet"), ("d.npz", b"", "npz"),
    ("d.npy", b"", "npz"), ("d.jsonl", b"", "jsonl"), ("d.ndjson", b"", "jsonl"),
    ("upload", FILES["parquet"], "parquet"), ("upload", FILES["npz"], "npz"), ("upload", FILES["jsonl"], "jsonl"),
    ("data.txt", FILES["csv"], "csv"), ("", b"\xef\xbb\xbf a,label\n1,2\n", "csv"),
])
def test_detect_format(name: str, data: bytes, fmt: str) -> None:
    assert detect_format(name, data) == fmt


@pytest.mark.parametrize(("name", "data", "needle"), [
    ("", b" \n ", "empty"), ("notes.txt", b"hello world\n", "cannot tell"), ("blob", b"\x00\x01\x02", "cannot tell")])
def test_detect_format_refuses(name: str, data: bytes, needle: str) -> None:
    with pytest.raises(InvalidDataset, match=f"(?i){needle}"):
        detect_format(name, data)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_detected_files_parse(fmt: str) -> None:
    assert parse_dataset(FILES[fmt], detect_format("upload", FILES[fmt])).schema.n_rows == 4


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_stored_schema_reparses_identically(fmt: str) -> None:
    """The registry re-reads a stored file with the schema's own target and task: nothing may change."""
    first = parse_dataset(FILES[fmt], fmt)
    again = parse_dataset(FILES[fmt], fmt, target=first.schema.target, task=first.schema.task)
    assert again.schema == first.schema and np.array_equal(again.y, first.y)


@pytest.mark.parametrize(("fmt", "task", "needle"), [
    ("xlsx", None, "unsupported format"), ("csv", "ranking", "task"), ("csv", None, "empty")])
def test_bad_arguments(fmt: str, task: str | None, needle: str) -> None:
    with pytest.raises(InvalidDataset, match=f"(?i){needle}"):
        parse_dataset(b"" if needle == "empty" else FILES["csv"], fmt, task=task)


def test_blank_target_means_the_default() -> None:
    assert parse_dataset(FILES["csv"], "csv", target="  ").schema.target == "label"


def _mutations(fmt: str, seed: int) -> list[bytes]:
    """Random bytes, and the valid file with random bytes flipped, cut or appended."""
    rng = np.random.default_rng(seed)
    valid = bytearray(FILES[fmt])
    flipped = bytearray(valid)
    for at in rng.integers(0, len(valid), size=4):
        flipped[at] = int(rng.integers(0, 256))
    noise = rng.integers(0, 256, size=200 + seed * 50, dtype=np.uint8).tobytes()
    return [noise, bytes(flipped), bytes(valid[: int(rng.integers(1, len(valid)))]), bytes(valid) + noise]


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
@pytest.mark.parametrize("seed", range(10))
def test_fuzzed_files_fail_only_as_invalid_dataset(fmt: str, seed: int) -> None:
    for data in _mutations(fmt, seed):
        try:
            parse_dataset(data, fmt)
        except InvalidDataset as exc:
            assert exc.message and exc.code == "invalid_dataset"
