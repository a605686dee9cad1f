"""The shapes of ``/predict`` and the V2 protocol, for the OpenAPI document.

The inference endpoints parse their bodies with orjson and check them as they decode (``api/raw.py``,
``inference/codecs``): a pydantic model per request would cost more than a small model's inference. These
models describe the same shapes to the document's readers; ``tests/api/test_openapi.py`` validates real
requests and answers against them, so they cannot drift from what the endpoints take and give.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | int


class PredictRequest(BaseModel):
    """``POST /predict`` (and ``/models/{name}/predict``, where the name comes from the path)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, description="The registered model's name (the path's, if given).")
    version: int | str | None = Field(
        default=None, description="A version number or an alias; default: alias production, else the latest.")
    variant: str | None = Field(
        default=None, description="An artifact kind (onnx, onnx-int8, torch, ...); default: the fastest one.")
    inputs: list[Any] = Field(
        description="Rows of numbers, objects keyed by feature name, nested lists (images) or strings (text).")


class PredictResponse(BaseModel):
    model: str
    version: int
    variant: str
    predictions: list[Any] = Field(description="Labels in the dataset's classes, or regression values.")
    probabilities: list[list[float]] | None = Field(default=None, description="Per class, for classifiers.")


Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
                   "FP32", "FP64", "BYTES"]


class V2InputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size: the tensor's bytes follow the JSON header (binary extension).")
    data: list[Any] | None = Field(default=None, description="Flat or nested, row-major; absent when binary.")


class V2RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data: answer this one in binary.")


class V2InferRequest(BaseModel):
    """A V2 inference request: JSON, or with Triton's binary tensor extension a JSON header of
    ``Inference-Header-Content-Length`` bytes followed by the tensors' raw bytes (``application/octet-stream``)."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2InputTensor] = Field(min_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2OutputTensor]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for a dimension of any size (the batch).")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2IndexRequest(BaseModel):
    ready: bool = Field(default=False, description="Only the models that are loaded.")


class V2IndexEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str | None = None


class V2Error(BaseModel):
    """The V2 protocol's error shape (our own API's has a ``code`` too)."""

    error: str
