"""The one table from error code to HTTP status, and the handlers that render every error the same way."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from maas.api.responses import JSONResponse
from maas.errors import MaasError, Overloaded

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "malformed_json": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "dataset_not_found": 404,
    "model_not_found": 404,
    "version_not_found": 404,
    "alias_not_found": 404,
    "artifact_not_found": 404,
    "job_not_found": 404,
    "key_not_found": 404,
    "already_exists": 409,
    "conflict": 409,
    "version_in_use": 409,
    "dataset_in_use": 409,
    "job_not_cancellable": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_input": 422,
    "invalid_dataset": 422,
    "invalid_model": 422,
    "invalid_spec": 422,
    "idempotency_key_reused": 422,
    "non_finite_loss": 422,
    "checkpoint_mismatch": 409,
    "internal_error": 500,
    "artifact_corrupt": 500,
    "inference_failed": 500,
    "not_implemented": 501,
    "unavailable": 503,
    "overloaded": 503,
    "deadline_exceeded": 504,
    "config_error": 500,
}

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def status_for(error: MaasError) -> int:
    return STATUS_BY_CODE.get(error.code, 500)


def error_response(error: MaasError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if isinstance(error, Overloaded) else None
    if status_for(error) >= 500:
        log.warning("%s: %s", error.code, error.message)
    return JSONResponse(error.to_dict(), status_code=status_for(error), headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> str:
    """A 405's ``Allow``: every method some route fully matches ``scope``'s path with (RFC 9110, 15.5.6).

    Asked of the routes themselves (``BaseRoute.matches``), so routers that FastAPI keeps whole are asked too.
    """
    routes = list(routes)
    allowed = [method for method in _METHODS
               if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    async def on_maas_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MaasError)
        return error_response(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"error": "The request is invalid.", "code": "invalid_input", "details": details},
                              status_code=422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the methods of the first route of the path only
            headers = {**(headers or {}), "Allow": allowed_methods(request.app.router.routes, request.scope)}
        return JSONResponse({"error": message, "code": code}, status_code=exc.status_code, headers=headers)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "Internal server error.", "code": "internal_error"}, status_code=500)

    app.add_exception_handler(MaasError, on_maas_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
