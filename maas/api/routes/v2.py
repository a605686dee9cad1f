"""The KServe Open Inference Protocol (V2) over HTTP, so tritonclient and KServe clients work unchanged.

Health, server and model metadata, model readiness, ``infer`` (JSON and Triton's binary tensor extension) and
the model-repository extension (index, load, unload), as raw ASGI endpoints: ``infer`` is a hot path, and all
of them answer V2's error shape, ``{"error": "<message>"}``, rather than ours. Statuses follow KServe's
servers: a request the model cannot take is a 400 (our own API says 422), an unknown model a 404, a full
queue a 503 with ``Retry-After``, a missed deadline a 504.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from starlette.routing import Route

from maas import __version__
from maas.api.errors import status_for
from maas.api.inference_route import Target, inference_endpoint
from maas.api.openapi import RawOperation
from maas.api.openapi import ref as schema_ref
from maas.api.raw import (
    Answer,
    Handler,
    RawEndpoint,
    RawRequest,
    Ref,
    authorize,
    engine_of,
    error_answer,
    json_answer,
    json_object,
    version_ref,
)
from maas.api.schemas.inference import (
    V2IndexEntry,
    V2IndexRequest,
    V2InferRequest,
    V2InferResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from maas.errors import InvalidInput, MaasError
from maas.inference.codecs import V2Request, encode_v2_response, parse_v2_request, v2_model_input
from maas.inference.engine import InferenceEngine, Prediction
from maas.inference.servable import ServableVersion
from maas.registry.service import RegistryService

EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = b"inference-header-content-length"
BINARY = b"application/octet-stream"
_READ_SCOPES = ("read", "predict")


def v2_error(error: MaasError) -> Answer:
    status = status_for(error)
    return error_answer(error, {"error": error.message}, 400 if status == 422 else status)


# --- server --------------------------------------------------------------------------------------------
async def server_metadata(_request: RawRequest) -> Answer:
    return json_answer({"name": "maas", "version": __version__, "extensions": EXTENSIONS})


async def live(_request: RawRequest) -> Answer:
    return json_answer({"live": True})


async def ready(request: RawRequest) -> Answer:
    engine = request.services.engine
    accepting = engine is not None and engine.accepting
    return json_answer({"ready": accepting}, 200 if accepting else 503)


# --- models --------------------------------------------------------------------------------------------
async def model_metadata(request: RawRequest) -> Answer:
    services = request.services
    try:
        principal = authorize(request, *_READ_SCOPES)
        name, ref = _target(request)
        meta = await engine_of(services).metadata(principal.tenant, name, ref)
        versions = await asyncio.to_thread(_version_numbers, services.registry, principal.tenant, name)
    except MaasError as exc:
        return v2_error(exc)
    return json_answer({
        "name": name, "versions": versions, "platform": meta.platform,
        "inputs": [t.to_dict() for t in meta.inputs], "outputs": [t.to_dict() for t in meta.outputs],
    })


async def model_ready(request: RawRequest) -> Answer:
    try:
        principal = authorize(request, *_READ_SCOPES)
        name, ref = _target(request)
        is_ready = await engine_of(request.services).ready(principal.tenant, name, ref)
    except MaasError as exc:
        return v2_error(exc)
    return json_answer({"name": name, "ready": is_ready}, 200 if is_ready else 503)


class Infer:
    """V2 ``infer``'s steps (see ``inference_route``); the parsed request is the V2 request and the model name."""

    def read(self, request: RawRequest) -> Target[tuple[V2Request, str]]:
        engine = engine_of(request.services)
        principal = authorize(request, "predict")
        v2_request = parse_v2_request(request.body, _header_length(request))
        name, ref = _target(request)
        return Target(engine, principal.tenant, name, ref, (v2_request, name))

    def decode(self, parsed: tuple[V2Request, str], servable: ServableVersion) -> tuple[np.ndarray, str | None]:
        return v2_model_input(parsed[0], servable.input_name, servable.input_shape), None

    def answer(self, parsed: tuple[V2Request, str], servable: ServableVersion, prediction: Prediction) -> Answer:
        v2_request, name = parsed
        body, header_length = encode_v2_response(
            model_name=name, model_version=str(prediction.version),
            outputs=InferenceEngine.v2_outputs(servable, prediction.outputs), request=v2_request)
        if header_length is None:
            return Answer(body)
        return Answer(body, content_type=BINARY, headers=[(HEADER_LENGTH, b"%d" % header_length)])

    def error(self, error: MaasError) -> Answer:
        return v2_error(error)


# --- model repository extension ------------------------------------------------------------------------
async def repository_index(request: RawRequest) -> Answer:
    services = request.services
    try:
        principal = authorize(request, *_READ_SCOPES)
        only_ready = _optional_object(request).get("ready", False)
        if not isinstance(only_ready, bool):
            raise InvalidInput('"ready" must be true or false.')
        names = await asyncio.to_thread(_model_names, services.registry, principal.tenant)
        loaded = sorted({(e.key.model, e.key.version) for e in engine_of(services).loaded()
                         if e.key.tenant == principal.tenant})
    except MaasError as exc:
        return v2_error(exc)
    entries = [{"name": m, "version": str(v), "state": "READY"} for m, v in loaded]
    if not only_ready:
        entries += [{"name": n, "version": "", "state": "UNAVAILABLE", "reason": "not loaded"}
                    for n in names if n not in {m for m, _ in loaded}]
    return json_answer(entries)


async def load(request: RawRequest) -> Answer:
    try:
        principal = authorize(request, "manage")
        _optional_object(request)  # Triton's load may carry a config; ours comes from the registry
        await engine_of(request.services).load(principal.tenant, request.path_params["name"])
    except MaasError as exc:
        return v2_error(exc)
    return Answer(b"")


async def unload(request: RawRequest) -> Answer:
    try:
        principal = authorize(request, "manage")
        engine = engine_of(request.services)
        name = request.path_params["name"]
        await engine.resolve(principal.tenant, name)  # an unknown model is a 404, not a silent no-op
        await engine.unload(principal.tenant, name)
    except MaasError as exc:
        return v2_error(exc)
    return Answer(b"")


# --- helpers of the endpoints --------------------------------------------------------------------------
def _target(request: RawRequest) -> tuple[str, Ref]:
    params = request.path_params
    return params["name"], version_ref(params.get("version"))


def _header_length(request: RawRequest) -> int | None:
    raw = request.header(HEADER_LENGTH)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):  # "¹".isdigit() (latin-1 byte 0xB9)
        raise InvalidInput(f"Inference-Header-Content-Length must be a byte count, not {raw!r}.")
    return int(raw)


def _optional_object(request: RawRequest) -> dict[str, object]:
    """Repository requests may come with an empty body (tritonclient sends none for some calls)."""
    return json_object(request) if request.body.strip() else {}


def _version_numbers(registry: RegistryService, tenant: str, name: str) -> list[str]:
    return [str(v.version) for v in registry.list_versions(tenant, name, 0, 500).items]


def _model_names(registry: RegistryService, tenant: str) -> list[str]:
    return [m.name for m in registry.list_models(tenant, 0, 500).items]


def _get(path: str, handler: Handler) -> Route:
    return Route(path, RawEndpoint(handler), methods=["GET"])


def _post(path: str, handler: Handler) -> Route:
    return Route(path, RawEndpoint(handler), methods=["POST"])


_MODEL = "/v2/models/{name}"
_VERSION = "/v2/models/{name}/versions/{version}"
infer = inference_endpoint(Infer())
infer_routes = [Route(f"{base}/infer", infer, methods=["POST"]) for base in (_MODEL, _VERSION)]
routes = [
    _get("/v2", server_metadata),
    _get("/v2/health/live", live),
    _get("/v2/health/ready", ready),
    *(_get(base, model_metadata) for base in (_MODEL, _VERSION)),
    *(_get(f"{base}/ready", model_ready) for base in (_MODEL, _VERSION)),
    *infer_routes,
    _post("/v2/repository/index", repository_index),
    _post("/v2/repository/models/{name}/load", load),
    _post("/v2/repository/models/{name}/unload", unload),
]

_MODEL_ERRORS = (400, 401, 403, 404)
_NOT_READY: dict[int | str, dict[str, Any]] = {503: {
    "description": "Not accepting requests (no inference engine, or shutting down).",
    "content": {"application/json": {"schema": schema_ref(V2Ready)}}}}
_NOT_LOADED: dict[int | str, dict[str, Any]] = {503: {"description": "Not loaded yet.", "content": {
    "application/json": {"schema": schema_ref(V2ModelReady)}}}}
DOCS = {
    "/v2": RawOperation("Server metadata", "v2", V2ServerMetadata),
    "/v2/health/live": RawOperation("Liveness", "v2", V2Live),
    "/v2/health/ready": RawOperation("Readiness", "v2", V2Ready, extra_responses=_NOT_READY),
    **{base: RawOperation("Model metadata", "v2", V2ModelMetadata, errors=_MODEL_ERRORS, v2=True)
       for base in (_MODEL, _VERSION)},
    **{f"{base}/ready": RawOperation(
        "Model readiness", "v2", V2ModelReady, errors=_MODEL_ERRORS, v2=True,
        extra_responses=_NOT_LOADED) for base in (_MODEL, _VERSION)},
    **{f"{base}/infer": RawOperation(
        "Inference", "v2", V2InferResponse, request=V2InferRequest, binary=True,
        errors=(*_MODEL_ERRORS, 413, 503, 504), v2=True,
        description="JSON tensors, or Triton's binary tensor extension: a JSON header of "
                    "Inference-Header-Content-Length bytes, then the tensors' bytes.") for base in (_MODEL, _VERSION)},
    "/v2/repository/index": RawOperation("Repository index", "v2", V2IndexEntry, many=True, request=V2IndexRequest,
                                         request_optional=True, errors=(400, 401, 403), v2=True),
    "/v2/repository/models/{name}/load": RawOperation("Load a model", "v2", errors=(400, 401, 403, 404, 503),
                                                      v2=True, description="Loads and warms the model's version."),
    "/v2/repository/models/{name}/unload": RawOperation("Unload a model", "v2", errors=(400, 401, 403, 404), v2=True),
}
