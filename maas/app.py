"""The app factory: ``create_app(settings, services=None)``; one lifespan owns start and stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from maas import __version__
from maas.api.deps import Services
from maas.api.errors import install_error_handlers
from maas.api.hotpath import HotPath, MaasAPI
from maas.api.responses import JSONResponse
from maas.api.routes import datasets, health, jobs, keys, models, predict, v2
from maas.bootstrap import build_services, migrate
from maas.config import Settings
from maas.observability.middleware import RequestMiddleware, Scope, route_template

log = logging.getLogger(__name__)

UPLOAD_ROUTES = {("POST", "/datasets"), ("POST", "/models")}
UNAUDITED_PREFIXES = ("/predict", "/v2/")


def create_app(settings: Settings | None = None, services: Services | None = None, *,
               run_migrations: bool = True) -> MaasAPI:
    settings = settings or (services.settings if services else Settings())
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: MaasAPI) -> AsyncIterator[None]:
        if run_migrations:
            migrate(services)
        await _start(services)
        try:
            yield
        finally:
            await _stop(services)

    # FastAPI's native OpenTelemetry checks its providers and the environment on every request (~3 us of a
    # prediction's budget); maas exports Prometheus metrics instead.
    app = MaasAPI(title="maas", version=__version__, lifespan=lifespan, default_response_class=JSONResponse,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.services = app.state.services = services
    install_error_handlers(app)
    for module in (health, datasets, jobs, models, keys):
        app.include_router(module.router)
    # Inference: raw ASGI endpoints (no FastAPI validation or dependency injection per request). Every HTTP
    # request enters HotPath first: it serves predictions straight from their endpoints (with their request
    # id, body limit and metrics) and sends everything else through RequestMiddleware (request id, body limits,
    # metrics, audit) into FastAPI's stack (see api/hotpath.py).
    app.router.routes[:0] = [*predict.routes, *v2.routes]
    app.raw_operations = {**predict.DOCS, **v2.DOCS}  # FastAPI's OpenAPI document cannot see raw routes
    hot_routes = [*predict.routes, *v2.infer_routes]
    app.install_front(lambda fastapi_stack: HotPath(
        RequestMiddleware(fastapi_stack, metrics=services.metrics, limit_for=_limit_for(settings),
                          audit=_audit_hook(services), unaudited=_unaudited),
        routes=hot_routes, metrics=services.metrics, limit=settings.max_request_bytes))
    return app


async def _start(services: Services) -> None:
    if services.engine is not None:
        await services.engine.start()
    if services.workers is not None:
        services.workers.start()


async def _stop(services: Services) -> None:
    # Reverse order of start: stop taking jobs (checkpoint + release), then drain predictions, then the DB.
    if services.workers is not None:
        services.workers.stop()
    if services.engine is not None:
        await services.engine.stop()
    services.db.dispose()


def _limit_for(settings: Settings) -> Any:
    def limit(scope: Scope) -> int:
        if (scope["method"], scope["path"].rstrip("/")) in UPLOAD_ROUTES:
            return settings.max_upload_bytes
        return settings.max_request_bytes

    return limit


def _unaudited(scope: Scope) -> bool:
    return scope["path"].startswith(UNAUDITED_PREFIXES)


def _audit_hook(services: Services) -> Any:
    def audit(scope: Scope, template: str, status: int) -> None:
        principal = scope.get("state", {}).get("principal")
        tenant = principal.tenant if principal else "-"
        key_id = principal.key_id if principal else None
        services.keys.record(tenant, key_id, f"{scope['method']} {template}", scope["path"], str(status))

    return audit


__all__ = ["create_app", "route_template"]
