from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from maas import __version__
from maas.api.deps import ServicesDep
from maas.api.openapi import answers
from maas.api.responses import JSONResponse
from maas.api.schemas.answers import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None, responses=answers(Health))
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", response_model=None, responses={
    **answers(Readiness), **answers(Readiness, 503, "Not ready: a check failed.")})
def readyz(services: ServicesDep) -> Response:
    checks = {"database": services.db.ping()}
    checks["migrations"] = checks["database"] and services.db.schema_is_current()
    if services.workers is not None:
        checks["workers"] = services.workers.alive()
    ready = all(checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                          status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
