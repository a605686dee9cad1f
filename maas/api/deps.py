"""Dependencies as Annotated aliases, resolved from ``app.state.services``; routes never see a DB session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from maas.config import Settings, is_loopback
from maas.errors import Forbidden, Unauthenticated
from maas.observability.inference import InferenceMetrics
from maas.observability.metrics import Metrics
from maas.registry.db import Database
from maas.registry.jobs import JobQueue
from maas.registry.keys import KeyService
from maas.registry.service import RegistryService
from maas.security.api_keys import same_secret
from maas.security.principals import Principal, anonymous_local, bootstrap_admin
from maas.storage import ArtifactStore

if TYPE_CHECKING:
    from maas.inference.engine import InferenceEngine
    from maas.jobs.worker import WorkerPool


@dataclass
class Services:
    """Everything the app needs, built once by ``bootstrap.build_services``."""

    settings: Settings
    db: Database
    store: ArtifactStore
    registry: RegistryService
    keys: KeyService
    jobs: JobQueue
    metrics: Metrics
    engine: InferenceEngine | None = None
    inference_metrics: InferenceMetrics | None = None
    workers: WorkerPool | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def authenticate(services: Services, headers: Mapping[str, str]) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; shared by FastAPI routes and the raw ASGI endpoints."""
    header = headers.get("authorization")
    if not header:
        if services.settings.admin_key is None and is_loopback(services.settings.host) and not services.keys.has_keys():
            return anonymous_local()
        raise Unauthenticated("An API key is required: send 'Authorization: Bearer <key>'.")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <key>'.")
    key = key.strip()
    admin = services.settings.admin_key
    if admin and same_secret(key, admin):
        return bootstrap_admin()
    principal = services.keys.authenticate(key)
    if principal is None:
        raise Unauthenticated("The API key is invalid or revoked.")
    return principal


def get_principal(request: Request, services: ServicesDep) -> Principal:
    principal = authenticate(services, request.headers)
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[..., Principal]:
    def dependency(principal: PrincipalDep) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"This API key lacks the {scope!r} scope.")
        return principal

    return dependency


ReadDep = Annotated[Principal, Depends(require("read"))]
PredictDep = Annotated[Principal, Depends(require("predict"))]
TrainDep = Annotated[Principal, Depends(require("train"))]
ManageDep = Annotated[Principal, Depends(require("manage"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]


def get_registry(services: ServicesDep) -> RegistryService:
    return services.registry


def get_jobs(services: ServicesDep) -> JobQueue:
    return services.jobs


def get_keys(services: ServicesDep) -> KeyService:
    return services.keys


RegistryDep = Annotated[RegistryService, Depends(get_registry)]
JobsDep = Annotated[JobQueue, Depends(get_jobs)]
KeysDep = Annotated[KeyService, Depends(get_keys)]
