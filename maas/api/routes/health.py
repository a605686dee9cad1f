from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from maas import __version__
from maas.api.deps import ServicesDep
from maas.api.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", responses={503: {"description": "Not ready: a check failed (the same body)."}})
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
