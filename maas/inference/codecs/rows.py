"""Decode the ``inputs`` of a ``POST /predict`` body (already parsed by orjson) into one float32 batch.

Accepted: rows of numbers, a single row, objects keyed by feature name (any order), nested lists for images
(``[N, C, H, W]``, or ``[N, H, W]`` when C = 1), and a single image. Rows of plain numbers for a tabular model
are packed straight into float32 by ``struct`` (``_pack_rows``); everything else takes one
``np.asarray(..., dtype=float32)`` over the parsed lists; only when that fails do we walk the values in Python,
to tell a curl user exactly which value is wrong ("inputs[3] has 63 values; the model takes 64").
Numeric strings ("5.1") are accepted as numbers, like every CSV-born tool does.
"""

from __future__ import annotations

import functools
import math
import struct
import warnings
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NoReturn

import numpy as np

from maas.errors import InvalidInput

# The overflow of a value too large for float32 is reported to the client by position (_check_finite);
# numpy's warning about it would only repeat that in the server's log. np.errstate would silence it too, but
# costs ~1.5 us per request (numpy 2 keeps it in a context variable), and most requests never overflow.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)
warnings.filterwarnings("ignore", "overflow encountered in reduce", RuntimeWarning, __name__)  # _check_finite

Shape = tuple[int, ...]  # per sample, no batch dimension; -1 = any size
_MAX_DETAILS = 10
_PYTHON_SUM_UP_TO = 512  # values: _pack_rows's finite test, see there


def decode_rows(
    inputs: Any, input_shape: Sequence[int], feature_names: Sequence[str] | None = None
) -> np.ndarray:
    """``inputs`` as float32 ``[N, *input_shape]``, or ``InvalidInput`` naming the first bad value."""
    shape = tuple(input_shape)
    if len(shape) == 1 and type(inputs) is list:
        packed = _pack_rows(inputs, shape[0])
        if packed is not None:
            return packed
    if isinstance(inputs, dict) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], dict)):
        return _decode_named(inputs if isinstance(inputs, list) else [inputs], feature_names)
    if not isinstance(inputs, list):
        raise InvalidInput(f"inputs must be a list of rows (lists of numbers), not {_describe(inputs)}.")
    if not inputs:
        raise InvalidInput("inputs is empty; send at least one row.")
    try:
        array = np.asarray(inputs, dtype=np.float32)  # a value too large for float32 becomes inf: see below
    except RuntimeWarning:  # warnings made errors: the overflow is reported by position below all the same
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError):  # ragged rows or values that are not numbers
        _diagnose(inputs, shape)
    _check_finite(array, inputs)
    return _fit(array, shape)


def _pack_rows(rows: list[Any], width: int) -> np.ndarray | None:
    """Rows of ``width`` numbers packed straight into float32 ``[N, width]``; None for anything else.

    The common case of a tabular model, taken without numpy's per-call costs: ``struct`` converts each number
    in C and refuses what ``np.asarray`` would turn into infinity (a value too large for float32) or could not
    take alone (a string, null, a nested list). Those, a NaN or infinity that a Python caller (never JSON) may
    pass, and every other layout return None: ``decode_rows`` then takes its general path, which accepts or
    names them exactly as before. Decoding was 7-10 us of a one-row request over HTTP (the stages of
    ``scripts/bench_hot_path.py``); with this path the whole request measured 20.7-21.5 us in-process against
    22.1-22.7 us before (its ``--in-process``), and 1.03x the req/s over HTTP (``bench_serve.py --baseline``, at
    64 connections: within this machine's noise).
    """
    if width <= 0 or not rows:
        return None
    for row in rows:
        if type(row) is not list or len(row) != width:
            return None
    layout = _row_layout(width)
    buffer = bytearray(layout.size * len(rows))  # writable, unlike bytes: torch.from_numpy warns on read-only
    try:
        for i, row in enumerate(rows):
            layout.pack_into(buffer, i * layout.size, *row)
    except (struct.error, OverflowError):
        return None
    array = np.frombuffer(buffer, dtype=np.float32).reshape(len(rows), width)
    # After struct accepted them, a NaN or infinity is the only way to a non-finite sum (float32-sized values
    # cannot overflow a float64 sum). Python's sum skips numpy's call overhead on a few rows; from ~8 rows of 64
    # numpy's test is the cheaper (4,096 values: 1.4 us against 15.7 us).
    if array.size <= _PYTHON_SUM_UP_TO:
        if not math.isfinite(sum(map(sum, rows))):
            return None
    elif not np.isfinite(array).all():
        return None
    return array


@functools.lru_cache(maxsize=64)
def _row_layout(width: int) -> struct.Struct:
    return struct.Struct(f"={width}f")


# --- shapes ----------------------------------------------------------------------------------------------
def _fit(array: np.ndarray, shape: Shape) -> np.ndarray:
    """Add the batch (and, for one-channel images, the channel) dimension the client was allowed to omit."""
    if array.shape[1:] == shape or _matches(array.shape[1:], shape):  # the first test is the common, cheap one
        return array
    if _matches(array.shape, shape):
        return array[np.newaxis]
    if len(shape) >= 2 and shape[0] == 1:
        if _matches(array.shape[1:], shape[1:]):
            return array[:, np.newaxis]
        if _matches(array.shape, shape[1:]):
            return array[np.newaxis, np.newaxis]
    if shape == (1,) and array.ndim == 1:
        return array[:, np.newaxis]
    raise InvalidInput(_shape_message(array.shape, shape))


def _matches(actual: Shape, expected: Shape) -> bool:
    return len(actual) == len(expected) and all(e in (-1, a) for a, e in zip(actual, expected, strict=True))


def _shape_message(actual: Shape, shape: Shape) -> str:
    if len(shape) == 1:
        if len(actual) == 2:
            return f"inputs[0] has {actual[1]} values; the model takes {shape[0]}."
        if len(actual) == 1:
            return f"inputs has {actual[0]} values; the model takes {shape[0]} per row."
        return f"inputs has shape {list(actual)}; the model takes rows of {shape[0]} numbers."
    hint = f" (or [N, {', '.join(map(str, shape[1:]))}] for one channel)" if shape[0] == 1 else ""
    return f"inputs has shape {list(actual)}; the model takes [N, {', '.join(map(str, shape))}]{hint}."


# --- values ----------------------------------------------------------------------------------------------
def _check_finite(array: np.ndarray, inputs: Any) -> None:
    # One reduction is finite when every value is: the cheap test on the hot path (~1 us; a float64
    # accumulator measured ~0.6 us more). A sum of large finite values can still overflow float32, so a
    # non-finite sum only sends us to the elementwise test.
    try:
        total = np.add.reduce(array, axis=None)
    except RuntimeWarning:  # warnings made errors (the tests): the sum overflowed
        total = math.inf
    if math.isfinite(total):
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    index = tuple(int(i) for i in np.argwhere(~finite)[0])
    value = inputs
    for i in index:
        value = value[i]
    path = "inputs" + "".join(f"[{i}]" for i in index)
    raise InvalidInput(f"{path} is {_non_finite(value)}; the model takes finite numbers.")


def _non_finite(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value}, too large for a 32-bit float"
    return str(value)  # nan, inf, or a numeric string spelling them


def _diagnose(inputs: list[Any], shape: Shape) -> NoReturn:
    """The slow path: walk the values to name every problem (first ten)."""
    dims: Shape
    if shape == (1,) and not isinstance(inputs[0], list):
        items, dims = [(f"inputs[{i}]", v) for i, v in enumerate(inputs)], ()
    elif _depth(inputs) == len(shape) and (not isinstance(inputs[0], list) or len(inputs) == shape[0]):
        items, dims = [("inputs", inputs)], shape  # a single sample
    else:
        first = _depth(inputs[0])
        dims = shape[1:] if shape[0] == 1 and first == len(shape) - 1 else shape
        items = [(f"inputs[{i}]", v) for i, v in enumerate(inputs)]
    problems = [p for p in (_problem(v, path, dims) for path, v in items) if p][:_MAX_DETAILS]
    if not problems:
        problems = [f"inputs could not be read as numbers shaped [N, {', '.join(map(str, shape))}]."]
    raise InvalidInput(problems[0], details=problems if len(problems) > 1 else None)


def _problem(value: Any, path: str, dims: Shape) -> str | None:
    if not dims:
        return None if _is_number(value) else f"{path} is {_describe(value)}, not a number."
    if not isinstance(value, list):
        return f"{path} is {_describe(value)}; the model takes a list of {dims[0]} values there."
    if dims[0] != -1 and len(value) != dims[0]:
        return f"{path} has {len(value)} values; the model takes {dims[0]}."
    for i, item in enumerate(value):
        problem = _problem(item, f"{path}[{i}]", dims[1:])
        if problem:
            return problem
    return None


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth += 1
        value = value[0]
    return depth


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value[:40]}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- rows keyed by feature name --------------------------------------------------------------------------
def _decode_named(rows: list[Any], names: Sequence[str] | None) -> np.ndarray:
    if not names:
        raise InvalidInput(
            "This model has no feature names; send inputs as lists of numbers in the training column order."
        )
    get = itemgetter(*names)
    try:
        values = [get(row) for row in rows]
        complete = all(len(row) == len(names) for row in rows)  # no unknown names besides the wanted ones
    except (KeyError, TypeError):
        complete = False
    if not complete:
        _diagnose_named(rows, names)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(values, dtype=np.float32).reshape(len(rows), len(names))
    except (ValueError, TypeError):
        _diagnose_named(rows, names)
    finite = np.isfinite(array)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        value = rows[row][names[column]]
        raise InvalidInput(f'inputs[{row}]["{names[column]}"] is {_non_finite(value)}; the model takes finite numbers.')
    return array


def _diagnose_named(rows: list[Any], names: Sequence[str]) -> NoReturn:
    problems = [p for p in (_named_problem(row, i, names) for i, row in enumerate(rows)) if p][:_MAX_DETAILS]
    if not problems:
        problems = ["inputs could not be read as rows of feature values."]
    raise InvalidInput(problems[0], details=problems if len(problems) > 1 else None)


def _named_problem(row: Any, index: int, names: Sequence[str]) -> str | None:
    if not isinstance(row, dict):
        return f"inputs[{index}] is {_describe(row)}; send every row as an object keyed by feature name."
    wanted = set(names)
    missing = [n for n in names if n not in row]
    unknown = [k for k in row if k not in wanted]
    if missing or unknown:
        parts = [f"misses {_quoted(missing)}" if missing else "", f"has unknown {_quoted(unknown)}" if unknown else ""]
        found = " and ".join(p for p in parts if p)
        return f"inputs[{index}] {found}; the model takes {_quoted(list(names))}."
    for name in names:
        if not _is_number(row[name]):
            return f'inputs[{index}]["{name}"] is {_describe(row[name])}, not a number.'
    return None


def _quoted(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(f'"{n}"' for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
