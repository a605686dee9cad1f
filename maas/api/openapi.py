"""The OpenAPI document (``/openapi.json``, ``/docs``): FastAPI's, completed with what it cannot see.

FastAPI documents what it validates itself. maas reads its JSON bodies with orjson (``api/body.py``: curl's
default form type is JSON too) and serves inference from raw ASGI endpoints (``api/raw.py``), so FastAPI on
its own would document no request body, a FastAPI-shaped 422 that maas never sends, and no ``/predict`` or V2
route at all. Routes declare what they take and answer here instead: ``json_body`` / ``upload_body`` for
the request (``openapi_extra``), ``answers(...)`` for the answer's model (``schemas/answers.py``: documented,
never used to filter), ``errors(...)`` for the error statuses in our shape, and ``RawOperation`` for a raw
route; ``complete`` adds the raw routes' operations and every model's schema to the components.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from maas.api.schemas.inference import V2Error

COMPONENTS = "#/components/schemas/"


class Error(BaseModel):
    """Every error of maas's own API (the V2 routes answer ``V2Error``)."""

    error: str = Field(description="One human sentence.")
    code: str = Field(description="A stable snake_case code, e.g. model_not_found.")
    details: list[Any] | None = Field(default=None, description="Per field, for an invalid request.")


ERROR_TEXT = {
    400: "Malformed JSON or a bad request.",
    401: "No valid API key (only once keys exist).",
    403: "The key lacks the scope, or the resource is another tenant's business.",
    404: "Not found (another tenant's resource is a 404 too).",
    409: "Conflicts with the registry's state (exists already, in use, not cancellable).",
    413: "The body is over the size limit.",
    415: "An unsupported Content-Type.",
    422: "The request is well-formed but invalid (details name the fields).",
    503: "Overloaded or unavailable; retry after the Retry-After header's seconds.",
    504: "The request waited past its deadline.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}

_models: dict[str, type[BaseModel]] = {"Error": Error, "V2Error": V2Error}  # every model a document refers to


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema, which ``complete`` puts in the components."""
    _models[model.__name__] = model
    return {"$ref": COMPONENTS + model.__name__}


def errors(*statuses: int, v2: bool = False) -> dict[int | str, dict[str, Any]]:
    """FastAPI's ``responses=`` for these error statuses, in our error shape (or V2's)."""
    schema = ref(V2Error if v2 else Error)
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": ERROR_TEXT[status], "content": {"application/json": {"schema": schema}}}
        if status == 503:
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


def answers(model: type[BaseModel], status: int = 200, description: str = "OK") -> dict[int | str, dict[str, Any]]:
    """FastAPI's ``responses=`` entry documenting a route's answer as ``model`` (with ``response_model=None``, so
    FastAPI only documents it: the route's dict goes out as it is)."""
    return {status: {"model": model, "description": description}}


def json_body(model: type[BaseModel], *, description: str | None = None) -> dict[str, Any]:
    """FastAPI's ``openapi_extra`` for a route that reads ``model`` as its JSON body (``body.read_model``)."""
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": ref(model)}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def upload_body(fields: Mapping[str, str], *, required: Iterable[str], json: type[BaseModel] | None = None,
                description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a multipart upload (``file`` a file, the other ``fields`` text), or JSON ``json``."""
    properties = {name: {"type": "string", "format": "binary", "description": text} if name == "file"
                  else {"type": "string", "description": text} for name, text in fields.items()}
    content: dict[str, Any] = {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": list(required)}}}
    if json is not None:
        content["application/json"] = {"schema": ref(json)}
    body: dict[str, Any] = {"required": True, "content": content}
    if description:
        body["description"] = description
    return {"requestBody": body}


@dataclass(frozen=True)
class RawOperation:
    """The documentation of a raw route (``api/raw.py``), which FastAPI does not see."""

    summary: str
    tag: str
    response: type[BaseModel] | None = None  # the 200 answer's JSON; None for an empty body
    many: bool = False  # the answer is a list of ``response``
    request: type[BaseModel] | None = None
    request_optional: bool = False
    binary: bool = False  # also takes and answers Triton's binary tensor extension
    errors: tuple[int, ...] = ()
    v2: bool = False
    description: str = ""
    extra_responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)


def complete(document: dict[str, Any], routes: Iterable[BaseRoute], raw: Mapping[str, RawOperation]) -> dict[str, Any]:
    """``document`` (FastAPI's) with the operations of the raw ``routes`` (by path, from ``raw``) and the schema
    of every model referred to; returns it."""
    paths = document.setdefault("paths", {})
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        doc = raw.get(route.path)
        if doc is None:
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                paths.setdefault(route.path, {})[method.lower()] = _operation(route, method, doc)
    _our_validation_errors(paths)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):  # no longer referred to
        schemas.pop(fastapi_own, None)
    keys, top = models_json_schema([(m, "validation") for m in _models.values()], ref_template=COMPONENTS + "{model}")
    for model in _models.values():
        expected = COMPONENTS + model.__name__
        if keys[(model, "validation")].get("$ref") != expected:  # pydantic renamed it (two models of one name)
            raise RuntimeError(f"the OpenAPI schema of {model.__qualname__} is not at {expected}")
    schemas.update(top.get("$defs", {}))
    document["paths"] = dict(sorted(paths.items()))
    return document


_FASTAPI_422 = {"$ref": COMPONENTS + "HTTPValidationError"}


def _our_validation_errors(paths: dict[str, Any]) -> None:
    """FastAPI documents a 422 in its own shape on every route with parameters; maas answers ``Error``."""
    ours = errors(422)[422]
    for operations in paths.values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422", {})
            if invalid.get("content", {}).get("application/json", {}).get("schema") == _FASTAPI_422:
                operation["responses"]["422"] = ours


def _operation(route: Route, method: str, doc: RawOperation) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [doc.tag], "summary": doc.summary,
                                 "operationId": f"{method.lower()}_{route.path.strip('/').replace('/', '_')}"
                                 .replace("{", "").replace("}", "")}
    if doc.description:
        operation["description"] = doc.description
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"},
                   **({"description": "A version number or an alias."} if name == "version" else {})}
                  for name in route.param_convertors]
    if parameters:
        operation["parameters"] = parameters
    if doc.request is not None:
        content: dict[str, Any] = {"application/json": {"schema": ref(doc.request)}}
        if doc.binary:
            content["application/octet-stream"] = {"schema": {
                "type": "string", "format": "binary", "description": "The JSON header, then the tensors' bytes."}}
        operation["requestBody"] = {"required": not doc.request_optional, "content": content}
    ok: dict[str, Any] = {"description": "OK"}
    if doc.response is not None:
        schema = ref(doc.response)
        ok["content"] = {"application/json": {"schema": {"type": "array", "items": schema} if doc.many else schema}}
        if doc.binary:
            ok["content"]["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
            ok["headers"] = {"Inference-Header-Content-Length": {
                "description": "With binary outputs: the length of the JSON header before their bytes.",
                "schema": {"type": "integer"}}}
    responses: dict[str, Any] = {"200": ok}
    extra: dict[int | str, dict[str, Any]] = {**errors(*doc.errors, v2=doc.v2), **doc.extra_responses}
    for status, entry in extra.items():
        responses[str(status)] = entry
    operation["responses"] = responses
    return operation
