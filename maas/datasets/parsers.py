"""One entry point for every upload format; anything unexpected becomes InvalidDataset (422), never a 500."""

from __future__ import annotations

import logging
from collections.abc import Callable

from maas.datasets.jsonl import parse_jsonl
from maas.datasets.labels import check_task
from maas.datasets.npz import parse_npz
from maas.datasets.schema import ParsedDataset
from maas.datasets.tabular import parse_csv, parse_parquet
from maas.errors import InvalidDataset

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("csv", "parquet", "npz", "jsonl")
_PARSERS: dict[str, Callable[[bytes, str | None, str | None], ParsedDataset]] = {
    "csv": parse_csv, "parquet": parse_parquet, "npz": parse_npz, "jsonl": parse_jsonl}
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz", ".npy": "npz",
               ".jsonl": "jsonl", ".ndjson": "jsonl"}
_MAGIC = {b"PAR1": "parquet", b"PK\x03\x04": "npz", b"\x93NUMPY": "npz"}  # .npy: the NPZ parser explains


def detect_format(filename: str, data: bytes) -> str:
    """By extension, else by content: Parquet and zip (NPZ) magic bytes, a JSON object, or a comma-separated header."""
    lowered = (filename or "").strip().lower()
    for extension, fmt in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return fmt
    for magic, fmt in _MAGIC.items():
        if data.startswith(magic):
            return fmt
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise InvalidDataset("The file is empty.")
    if head[:1] == b"{":
        return "jsonl"
    if b"," in head.split(b"\n", 1)[0]:
        return "csv"
    raise InvalidDataset(f"Cannot tell the format of {filename or 'the file'!r}; "
                         f"name it with one of .csv, .parquet, .npz or .jsonl.")


def parse_dataset(data: bytes, fmt: str, target: str | None = None, task: str | None = None) -> ParsedDataset:
    if fmt not in _PARSERS:
        raise InvalidDataset(f"Unsupported format {fmt!r}; use one of {', '.join(SUPPORTED_FORMATS)}.")
    check_task(task)
    if not data or data.isspace():  # isspace: no copy of a large upload
        raise InvalidDataset("The file is empty.")
    target = (target or "").strip() or None
    try:
        return _PARSERS[fmt](data, target, task)
    except InvalidDataset:
        raise
    except Exception as exc:  # a parser bug or an exotic file must still be the client's 422, not our 500
        log.warning("unexpected %s while parsing a %s dataset", type(exc).__name__, fmt, exc_info=True)
        raise InvalidDataset(f"The {fmt} file could not be parsed ({type(exc).__name__}).") from exc
