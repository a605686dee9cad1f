"""``POST /predict`` and ``POST /models/{name}/predict``: the hot path, as raw ASGI endpoints.

Body: ``{"model", "version"?: number | alias, "variant"?: artifact kind, "inputs": [...]}`` (the second route
takes the model from its path). The version is resolved once (cached by the engine, no database query per
request), the inputs are decoded against *that* version's shape and feature names, and the answer is
``{"model", "version", "variant", "predictions", "probabilities"?}`` with labels in the dataset's classes.
Errors are our usual ``{"error", "code", "details"?}`` with the status of ``api.errors.STATUS_BY_CODE``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from maas.api.errors import status_for
from maas.api.raw import (
    Answer,
    RawEndpoint,
    RawRequest,
    Timing,
    authorize,
    engine_of,
    error_answer,
    json_answer,
    json_object,
    version_ref,
)
from maas.errors import InvalidInput, MaasError
from maas.inference.codecs import decode_rows


async def predict(request: RawRequest) -> Answer:
    timing = Timing(request.services)
    try:
        engine = engine_of(request.services)
        principal = authorize(request, "predict")
        body = json_object(request)
        name = request.path_params.get("name") or _model_name(body)
        ref = version_ref(body.get("version"))
        servable = engine.resolved(principal.tenant, name, ref) or await engine.resolve(principal.tenant, name, ref)
        timing.servable = servable
        x = decode_rows(_inputs(body), servable.input_shape, servable.feature_names)
        prediction = await engine.infer(servable, _variant(body.get("variant")), x)
        answer = {"model": servable.model, "version": servable.version, "variant": prediction.variant,
                  **engine.postprocess(servable, prediction.outputs)}
    except MaasError as exc:
        return timing.finish(error_answer(exc, exc.to_dict(), status_for(exc)), exc)
    return timing.finish(json_answer(answer))


def _model_name(body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidInput('The request needs "model": the name of a registered model.')
    return name


def _inputs(body: dict[str, Any]) -> Any:
    if "inputs" not in body:
        raise InvalidInput('The request needs "inputs": a list of rows (or objects keyed by feature name).')
    return body["inputs"]


def _variant(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise InvalidInput('"variant" must be an artifact kind such as "onnx", "onnx-int8" or "torch".')


routes = [
    Route("/predict", RawEndpoint(predict), methods=["POST"]),
    Route("/models/{name}/predict", RawEndpoint(predict), methods=["POST"]),
]
