"""``POST /predict`` and ``POST /models/{name}/predict``: the hot path, as raw ASGI endpoints.

Body: ``{"model", "version"?: number | alias, "variant"?: artifact kind, "inputs": [...]}`` (the second route
takes the model from its path). The version is resolved once (cached by the engine, no database query per
request), the inputs are decoded against *that* version's shape and feature names, and the answer is
``{"model", "version", "variant", "predictions", "probabilities"?}`` with labels in the dataset's classes.
Errors are our usual ``{"error", "code", "details"?}`` with the status of ``api.errors.STATUS_BY_CODE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.routing import Route

from maas.api.errors import status_for
from maas.api.inference_route import Target, inference_endpoint
from maas.api.openapi import RawOperation
from maas.api.raw import Answer, RawRequest, authorize, engine_of, error_answer, json_answer, json_object, version_ref
from maas.api.schemas.inference import PredictRequest, PredictResponse
from maas.errors import InvalidInput, MaasError
from maas.inference.codecs import decode_rows
from maas.inference.engine import InferenceEngine, Prediction
from maas.inference.servable import ServableVersion


class Predict:
    """``/predict``'s steps (see ``inference_route``); the parsed request is the JSON body."""

    def read(self, request: RawRequest) -> Target[dict[str, Any]]:
        engine = engine_of(request.services)
        principal = authorize(request, "predict")
        body = json_object(request)
        name = request.path_params.get("name") or _model_name(body)
        return Target(engine, principal.tenant, name, version_ref(body.get("version")), body)

    def decode(self, parsed: dict[str, Any], servable: ServableVersion) -> tuple[np.ndarray, str | None]:
        x = decode_rows(_inputs(parsed), servable.input_shape, servable.feature_names)
        return x, _variant(parsed.get("variant"))

    def answer(self, parsed: dict[str, Any], servable: ServableVersion, prediction: Prediction) -> Answer:
        return json_answer({"model": servable.model, "version": servable.version, "variant": prediction.variant,
                            **InferenceEngine.postprocess(servable, prediction.outputs)})

    def error(self, error: MaasError) -> Answer:
        return error_answer(error, error.to_dict(), status_for(error))


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


predict = inference_endpoint(Predict())
routes = [
    Route("/predict", predict, methods=["POST"]),
    Route("/models/{name}/predict", predict, methods=["POST"]),
]

_ERRORS = (400, 401, 403, 404, 413, 415, 422, 503, 504)
DOCS = {
    "/predict": RawOperation(
        "Predict", "inference", PredictResponse, request=PredictRequest, errors=_ERRORS,
        description="Predictions in the dataset's own labels, with class probabilities (classification) or "
                    "values (regression). Requests are batched dynamically with others for the same model."),
    "/models/{name}/predict": RawOperation(
        "Predict with the model named in the path", "inference", PredictResponse, request=PredictRequest,
        errors=_ERRORS, description='As POST /predict; the body\'s "model" may be left out.'),
}
