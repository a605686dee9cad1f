"""CSV and Parquet: named columns, one of them the target, the rest numeric features.

Two refusals are deliberate. A string (categorical) feature is refused rather than one-hot encoded, and a missing
value is refused rather than imputed: either would have to be replayed on every prediction request, and a served
model takes exactly the numbers of ``schema.features``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from maas.datasets.labels import encode_labels, infer_task
from maas.datasets.limits import MAX_DECODED_BYTES, MAX_FEATURES
from maas.datasets.schema import DatasetSchema, ParsedDataset
from maas.errors import InvalidDataset

DEFAULT_TARGETS = ("target", "label", "y", "class")
_HEADER_CHARS = 16 * 1024 * 1024  # enough for MAX_FEATURES long names, without copying a whole upload


def parse_csv(data: bytes, target: str | None, task: str | None) -> ParsedDataset:
    text = _utf8(data)
    _check_header(text)
    try:
        table = pacsv.read_csv(io.BytesIO(data))
    except pa.ArrowException as exc:
        _check_ragged(text)  # only on failure: arrow's message has no line number, but this pass is slow
        raise InvalidDataset(f"The CSV could not be parsed: {_first_line(exc)}") from exc
    return from_table(table, "csv", target, task)


def parse_parquet(data: bytes, target: str | None, task: str | None) -> ParsedDataset:
    try:
        file = pq.ParquetFile(io.BytesIO(data))
        _check_parquet_size(file.metadata)
        table = file.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidDataset(f"The Parquet file could not be read: {_first_line(exc)}") from exc
    return from_table(table, "parquet", target, task)


def from_table(table: pa.Table, fmt: str, target: str | None, task: str | None) -> ParsedDataset:
    table = _clean_names(table)
    if table.num_rows == 0:
        raise InvalidDataset("The dataset has a header but no rows.")
    target = _target_column(table.column_names, target)
    features = [c for c in table.column_names if c != target]
    if not features:
        raise InvalidDataset("The dataset has no feature columns besides the target.")
    x = _feature_matrix(table, features)
    labels = _labels(table.column(target), target)
    task = infer_task(labels, task)
    y, classes = encode_labels(labels, task)
    schema = DatasetSchema(task=task, modality="tabular", format=fmt, n_rows=len(y), target=target,
                           features=features, input_shape=[len(features)], classes=classes)
    return ParsedDataset(schema=schema, X=x, texts=None, y=y)


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"The CSV is not UTF-8 text (invalid byte at offset {exc.start}).") from exc


def _check_header(text: str) -> None:
    """Refuse a missing or too-wide header before arrow spends time parsing the whole file."""
    try:
        header = next((row for row in csv.reader(io.StringIO(text[:_HEADER_CHARS])) if row), None)
    except csv.Error as exc:
        raise InvalidDataset(f"The CSV header is malformed: {exc}.") from exc
    if header is None:
        raise InvalidDataset("The CSV has no header row.")
    if len(header) > MAX_FEATURES + 1:
        raise InvalidDataset(f"The CSV has {len(header) - 1} features; at most {MAX_FEATURES} are supported.")


def _check_ragged(text: str) -> None:
    """Name the first line whose field count differs from the header."""
    rows = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(row for row in rows if row)
        for row in rows:
            if row and len(row) != len(header):
                raise InvalidDataset(f"Line {rows.line_num} of the CSV has {len(row)} fields; "
                                     f"the header has {len(header)}.")
    except csv.Error as exc:
        raise InvalidDataset(f"Line {rows.line_num} of the CSV is malformed: {exc}.") from exc


def _check_parquet_size(metadata: pq.FileMetaData) -> None:
    if metadata.num_columns > MAX_FEATURES + 1:
        raise InvalidDataset(f"The file has {metadata.num_columns} columns; at most {MAX_FEATURES} features are "
                             "supported.")
    decoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if decoded > MAX_DECODED_BYTES:
        raise InvalidDataset(f"The Parquet file expands to {decoded} bytes; at most {MAX_DECODED_BYTES} are "
                             "supported.")


def _clean_names(table: pa.Table) -> pa.Table:
    """Headers like ``a, b, label`` are common: surrounding spaces are not part of a column's name."""
    names = [str(name).strip() for name in table.column_names]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise InvalidDataset(f"Column names must be unique; repeated: {duplicates}.")
    if len(names) > MAX_FEATURES + 1:
        raise InvalidDataset(f"The dataset has {len(names) - 1} features; at most {MAX_FEATURES} are supported.")
    return table.rename_columns(names)


def _target_column(columns: list[str], target: str | None) -> str:
    if target is not None:
        if target not in columns:
            raise InvalidDataset(f"There is no target column {target!r}; the columns are {columns}.")
        return target
    found = next((c for c in columns if c.lower() in DEFAULT_TARGETS), None)
    if found is None:
        raise InvalidDataset(f"Name the target column (none is called target, label, y or class): {columns}.")
    return found


def _feature_matrix(table: pa.Table, features: list[str]) -> np.ndarray:
    """Filled column by column into one float32 array, so a wide file never holds a float64 copy of itself."""
    x = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for i, name in enumerate(features):
        values = _feature(table.column(name), name)
        with np.errstate(over="ignore"):
            x[:, i] = values
        if not np.all(np.isfinite(x[:, i])):
            raise InvalidDataset(f"The column {name!r} has values beyond the float32 range.")
    return x


def _feature(column: pa.ChunkedArray, name: str) -> np.ndarray:
    column = _decoded(column)
    if column.null_count == len(column):
        raise InvalidDataset(f"The column {name!r} is empty (every value is missing).")
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)):
        raise InvalidDataset(f"The feature column {name!r} is not numeric ({column.type}, e.g. {_example(column)!r}); "
                             "encode categories as numbers (one-hot) first.")
    if column.null_count:
        raise InvalidDataset(f"The column {name!r} has {column.null_count} missing values; fill or drop those rows "
                             "first.")
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    nans = int(np.count_nonzero(np.isnan(values)))
    if nans == len(values):
        raise InvalidDataset(f"The column {name!r} is empty (every value is NaN).")
    if nans:
        raise InvalidDataset(f"The column {name!r} has {nans} missing (NaN) values; fill or drop those rows first.")
    if not np.all(np.isfinite(values)):
        raise InvalidDataset(f"The column {name!r} has infinite values.")
    return values


def _labels(column: pa.ChunkedArray, name: str) -> np.ndarray:
    column = _decoded(column)
    if column.null_count:
        raise InvalidDataset(f"The target column {name!r} has {column.null_count} missing values.")
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_decimal(column.type):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    try:  # dates, times and other scalars are classes named by their text
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
    except pa.ArrowException as exc:
        raise InvalidDataset(f"The target column {name!r} has an unsupported type ({column.type}).") from exc
    labels = np.asarray(text.to_pylist(), dtype=str)
    blank = int(np.count_nonzero(labels == ""))  # a CSV reads an empty cell of a text column as ""
    if blank:
        raise InvalidDataset(f"The target column {name!r} has {blank} missing values.")
    return labels


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary-encoded columns (pandas categoricals in Parquet) as their plain values."""
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _example(column: pa.ChunkedArray) -> object:
    return next((v for v in column.drop_null().slice(0, 1).to_pylist()), None)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
