"""KServe V2 (Open Inference Protocol) tensors <-> numpy, in JSON and with Triton's binary tensor extension.

A binary request is ``<JSON header><raw tensor bytes...>``: the header's length travels in the
``Inference-Header-Content-Length`` HTTP header, and every input sent as bytes names its length in
``parameters.binary_data_size``; the raw parts follow in input order, little-endian, row-major, BYTES
elements as a 4-byte length followed by the bytes. Responses mirror this: an output is appended as bytes when
its request asked ``parameters.binary_data`` (or the request asked ``binary_data_output``), and
``encode_v2_response`` returns the header length for the API layer to send.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from maas.errors import InvalidInput, MalformedJson

_NUMPY_BY_DATATYPE: dict[str, type[np.generic]] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_DATATYPE_BY_KIND = {np.dtype(t).str[1:]: name for name, t in _NUMPY_BY_DATATYPE.items()}
_LENGTH = struct.Struct("<I")
# JSON data an integer or BOOL input takes as it is (numpy kinds; "O": integers beyond int64, which the cast refuses)
_EXACT_KINDS = {name: "b" if name == "BOOL" else "iuO" for name, t in _NUMPY_BY_DATATYPE.items()
                if np.dtype(t).kind in "biu"}


@dataclass(frozen=True)
class V2Tensor:
    """One decoded request input, in its own datatype (``BYTES`` as an object array)."""

    name: str
    datatype: str
    data: np.ndarray


@dataclass(frozen=True)
class V2RequestedOutput:
    name: str
    binary: bool | None  # None: follow the request's binary_data_output


@dataclass(frozen=True)
class V2Request:
    inputs: list[V2Tensor]
    outputs: list[V2RequestedOutput] = field(default_factory=list)  # empty: every output
    binary_output: bool = False
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


# --- requests --------------------------------------------------------------------------------------------
def parse_v2_request(body: bytes, header_length: int | None = None) -> V2Request:
    """Decode a V2 infer body; ``header_length`` is ``Inference-Header-Content-Length`` when present."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    elif 0 < header_length <= len(body):
        header, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        raise InvalidInput(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes."
        )
    document = _load_json(header)
    items = document.get("inputs")
    if not isinstance(items, list) or not items:
        raise InvalidInput('The request needs "inputs": a non-empty list of tensors.')
    inputs, used = [], 0
    for item in items:
        tensor, size = _input(item, binary[used:])
        inputs.append(tensor)
        used += size
    if used != len(binary):
        raise InvalidInput(f"The body carries {len(binary)} bytes of tensor data but the inputs declare {used}.")
    parameters = document.get("parameters") or {}
    return V2Request(
        inputs=inputs,
        outputs=[_requested_output(o) for o in document.get("outputs") or []],
        binary_output=bool(_mapping(parameters, "parameters").get("binary_data_output", False)),
        id=str(document["id"]) if document.get("id") is not None else None,
        parameters=parameters,
    )


def v2_model_input(request: V2Request, name: str, input_shape: Sequence[int]) -> np.ndarray:
    """The request's tensor for the model input ``name`` as float32 ``[N, *input_shape]``."""
    tensor = _pick(request.inputs, name)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below, by index
            data = tensor.data.astype(np.float32, copy=False)
    except (ValueError, TypeError):  # BYTES that are not numbers
        raise InvalidInput(f"Input {tensor.name!r} holds {tensor.datatype} values that are not numbers.") from None
    expected = [-1, *input_shape]
    if data.ndim != len(expected) or any(e not in (-1, a) for a, e in zip(data.shape, expected, strict=True)):
        raise InvalidInput(f"Input {tensor.name!r} has shape {list(data.shape)}; the model takes {expected}.")
    if data.shape[0] == 0:
        raise InvalidInput(f"Input {tensor.name!r} holds an empty batch; send at least one row.")
    finite = np.isfinite(data)
    if not finite.all():
        index = [int(i) for i in np.argwhere(~finite)[0]]
        raise InvalidInput(
            f"Input {tensor.name!r} holds NaN, Infinity or a value too large for FP32 at index {index}."
        )
    return data


def _load_json(header: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The inference request header is not valid JSON: {exc}.") from None
    return _mapping(document, "The inference request")


def _input(item: Any, binary: memoryview) -> tuple[V2Tensor, int]:
    """One input and the number of binary bytes it consumed."""
    item = _mapping(item, "Every input")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not name:
        raise InvalidInput('Every input needs a "name".')
    if datatype != "BYTES" and datatype not in _NUMPY_BY_DATATYPE:
        raise InvalidInput(f"Input {name!r} has unsupported datatype {datatype!r}; use FP32.")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):  # not bool either
        raise InvalidInput(f'Input {name!r} needs "shape": a list of non-negative integers.')
    size = _mapping(item.get("parameters") or {}, f"Input {name!r} parameters").get("binary_data_size")
    if size is not None:
        if type(size) is not int or not 0 <= size <= len(binary):
            raise InvalidInput(f"Input {name!r} declares binary_data_size {size} but {len(binary)} bytes are left.")
        return V2Tensor(name, datatype, _from_binary(binary[:size], name, datatype, shape)), size
    if "data" not in item:
        raise InvalidInput(f'Input {name!r} has neither "data" nor parameters.binary_data_size.')
    return V2Tensor(name, datatype, _from_json(item["data"], name, datatype, shape)), 0


def _from_json(data: Any, name: str, datatype: str, shape: list[int]) -> np.ndarray:
    """V2 allows flat or nested ``data``; both are read in row-major order."""
    dtype = object if datatype == "BYTES" else _NUMPY_BY_DATATYPE[datatype]
    try:
        if datatype in _EXACT_KINDS:  # a cast would truncate 2.7 to 2, wrap 1e10 or read 3 as true, silently
            given = np.asarray(data)
            if given.size and given.dtype.kind not in _EXACT_KINDS[datatype]:
                if given.dtype.kind == "f" and datatype != "BOOL" and (np.abs(given) >= 2**63).any():
                    raise OverflowError  # an integer beyond 64 bits, which orjson reads as a float
                raise ValueError
        with np.errstate(over="ignore"):  # 1e39 as FP32 is inf, which the model input's finite check refuses
            array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError):
        raise InvalidInput(f"Input {name!r} has data that are not {datatype} values in a regular shape.") from None
    except OverflowError:  # 300 as INT8, -1 as UINT8, 1e21 as INT64
        raise InvalidInput(f"Input {name!r} has values out of the range of {datatype}.") from None
    return _reshaped(array.reshape(-1), name, shape)


def _from_binary(raw: memoryview, name: str, datatype: str, shape: list[int]) -> np.ndarray:
    if datatype == "BYTES":
        return _reshaped(_unpack_bytes(raw, name), name, shape)
    dtype = np.dtype(_NUMPY_BY_DATATYPE[datatype]).newbyteorder("<")
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"Input {name!r} of shape {shape} needs {expected} bytes of {datatype} but binary_data_size is {len(raw)}."
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)  # zero copy: a read-only view of the body


def _unpack_bytes(raw: memoryview, name: str) -> np.ndarray:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"Input {name!r} has a truncated BYTES element.")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"Input {name!r} has a truncated BYTES element.")
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _reshaped(flat: np.ndarray, name: str, shape: list[int]) -> np.ndarray:
    if flat.size != math.prod(shape):
        raise InvalidInput(f"Input {name!r} has {flat.size} values but its shape {shape} holds {math.prod(shape)}.")
    return flat.reshape(shape)


def _requested_output(item: Any) -> V2RequestedOutput:
    item = _mapping(item, "Every requested output")
    if not isinstance(item.get("name"), str):
        raise InvalidInput('Every requested output needs a "name".')
    binary = _mapping(item.get("parameters") or {}, "Output parameters").get("binary_data")
    return V2RequestedOutput(item["name"], None if binary is None else bool(binary))


def _pick(inputs: list[V2Tensor], name: str) -> V2Tensor:
    """The input called ``name``; a lone input is taken whatever its name, as our models have one input."""
    for tensor in inputs:
        if tensor.name == name:
            return tensor
    if len(inputs) == 1:
        return inputs[0]
    raise InvalidInput(f"The model takes one input named {name!r}; the request has {[t.name for t in inputs]}.")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object.")
    return value


# --- responses -------------------------------------------------------------------------------------------
def encode_v2_response(
    *, model_name: str, model_version: str, outputs: dict[str, np.ndarray], request: V2Request
) -> tuple[bytes, int | None]:
    """The response body and, when some output went as raw bytes, the JSON header's length (else None)."""
    entries, blobs = [], []
    for name, binary in _selected(outputs, request):
        array = outputs[name]
        datatype = v2_datatype(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = _to_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json(array, datatype)
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request.id is not None:
        document["id"] = request.id
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def v2_datatype(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "OSU":
        return "BYTES"
    return _DATATYPE_BY_KIND.get(dtype.str[1:], "FP32")


def _selected(outputs: dict[str, np.ndarray], request: V2Request) -> list[tuple[str, bool]]:
    if not request.outputs:
        return [(name, request.binary_output) for name in outputs]
    unknown = [o.name for o in request.outputs if o.name not in outputs]
    if unknown:
        raise InvalidInput(f"Unknown output {unknown[0]!r}; the model has {list(outputs)}.")
    return [(o.name, request.binary_output if o.binary is None else o.binary) for o in request.outputs]


def _to_json(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    # orjson serialises a native-endian contiguous array directly, far faster than tolist().
    return np.ascontiguousarray(array.reshape(-1), dtype=array.dtype.newbyteorder("="))


def _to_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return b"".join(_LENGTH.pack(len(p)) + p for p in parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
