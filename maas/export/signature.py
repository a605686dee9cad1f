"""Validate an ONNX file from outside and read its tensor signature.

Used when a user imports a model: ``onnx.checker`` proves the graph well-formed, external data is refused
(its paths could point anywhere on our disk), and one ONNX Runtime session proves it actually loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maas.errors import InvalidModel

_ELEM_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES", 9: "BOOL",
               10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16"}
# What the serving backends can cast decoded inputs to (see inference.backends.onnxruntime).
SERVABLE_INPUT_TYPES = frozenset({"FP32", "FP64", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL"})


@dataclass(frozen=True)
class TensorSignature:
    name: str
    datatype: str
    shape: list[int]  # -1 for a dynamic dimension

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass(frozen=True)
class OnnxSignature:
    inputs: list[TensorSignature]
    outputs: list[TensorSignature]
    opset: int


def read_onnx_signature(data: bytes) -> OnnxSignature:
    """Check ``data`` is a self-contained, loadable ONNX model and return its inputs and outputs."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidModel("The file is not a valid ONNX model (it could not be parsed).") from exc
    if not model.graph.node and not model.graph.output:
        raise InvalidModel("The file is not a valid ONNX model (it has an empty graph).")
    _refuse_external_data(model)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, and e.g. UnicodeDecodeError for a name that is not UTF-8 (fuzzed)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidModel("The ONNX model failed validation.", details=[reason]) from exc
    _check_loads(data)
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    _check_servable_inputs(graph_inputs)
    inputs = [_tensor(v) for v in graph_inputs]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxSignature(inputs=inputs, outputs=[_tensor(v) for v in model.graph.output], opset=opset)


def _check_servable_inputs(inputs: list[Any]) -> None:
    """maas feeds a model one numeric tensor (rows decoded from JSON or V2 tensors, cast to its type): refuse
    at import what it could never feed, rather than accept a model whose first load fails."""
    if not inputs:
        raise InvalidModel("The ONNX model has no inputs.")
    if len(inputs) > 1:
        names = ", ".join(repr(v.name) for v in inputs)
        raise InvalidModel(f"The ONNX model takes {len(inputs)} inputs ({names}); maas serves models that take one "
                           "numeric tensor.")
    (value,) = inputs
    if not value.type.HasField("tensor_type"):
        raise InvalidModel(f"The ONNX model's input {value.name!r} is not a tensor (a sequence, map or optional); "
                           "maas serves models that take one numeric tensor.")
    datatype = _ELEM_TYPES.get(value.type.tensor_type.elem_type, "UNKNOWN")
    if datatype not in SERVABLE_INPUT_TYPES:
        raise InvalidModel(f"The ONNX model's input {value.name!r} is {datatype}; maas serves models whose input "
                           f"is one of {', '.join(sorted(SERVABLE_INPUT_TYPES))}.")


def _refuse_external_data(model: Any) -> None:
    from onnx.external_data_helper import uses_external_data

    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors.extend(attr.t for attr in node.attribute if attr.HasField("t"))
    if any(uses_external_data(t) for t in tensors):
        raise InvalidModel("ONNX models that reference external data files are not accepted; embed the weights.")


def _check_loads(data: bytes) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated types for unloadable graphs
        raise InvalidModel("ONNX Runtime could not load the model.", details=[str(exc).splitlines()[0][:300]]) from exc


def _tensor(value: Any) -> TensorSignature:
    tensor_type = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    return TensorSignature(name=value.name, datatype=_ELEM_TYPES.get(tensor_type.elem_type, "UNKNOWN"), shape=dims)
