"""JSON bodies parsed with orjson and validated with pydantic, whatever the client's Content-Type said.

``curl -d '{...}'`` sends ``application/x-www-form-urlencoded``; a curl user should not have to learn to add
``-H 'Content-Type: application/json'`` to be understood, so JSON routes accept that and a missing type too.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from maas.errors import InvalidInput, MalformedJson, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request: Request) -> Any:
    kind = media_type(request)
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise UnsupportedMediaType(f"Send JSON (application/json), not {kind!r}.")
    raw = await request.body()
    if not raw.strip():
        raise MalformedJson("The request body is empty; send a JSON object.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from exc


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("The request is invalid.", details=validation_details(exc)) from exc


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False, include_input=False)]


async def read_model(request: Request, model: type[M]) -> M:
    return validate(model, await read_json(request))
