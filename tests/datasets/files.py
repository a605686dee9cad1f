"""In-memory dataset files for the tests: every format built from plain Python values."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq


def csv_bytes(columns: dict[str, list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue().encode()


def parquet_bytes(columns: dict[str, list[Any]] | pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(columns if isinstance(columns, pa.Table) else pa.table(columns), out)
    return out.getvalue()


def table_bytes(fmt: str, columns: dict[str, list[Any]]) -> bytes:
    return csv_bytes(columns) if fmt == "csv" else parquet_bytes(columns)


def npz_bytes(**arrays: Any) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def jsonl_bytes(rows: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in rows) + b"\n"
