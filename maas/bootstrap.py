"""The one place where maas's objects are constructed and wired together."""

from __future__ import annotations

from maas.api.deps import Services
from maas.config import Settings
from maas.errors import Unavailable
from maas.inference.engine import InferenceEngine
from maas.jobs.worker import WorkerPool
from maas.observability.inference import InferenceMetrics
from maas.observability.metrics import Metrics
from maas.registry.db import Database
from maas.registry.jobs import JobQueue
from maas.registry.keys import KeyService
from maas.registry.service import RegistryService
from maas.registry.serving import RegistryResolver
from maas.storage import ArtifactStore


def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    store = ArtifactStore(settings.artifacts_dir)
    registry = RegistryService(db, store)
    metrics = Metrics()
    metrics.add_registry_source(registry.counts)
    jobs = JobQueue(db)
    inference_metrics = InferenceMetrics(metrics)
    engine = InferenceEngine(settings, RegistryResolver(registry), inference_metrics)
    # An alias moved, an artifact added, a version deleted: this replica forgets that model's resolutions at once.
    registry.on_alias_change(engine.invalidate)
    services = Services(settings=settings, db=db, store=store, registry=registry, keys=KeyService(db), jobs=jobs,
                        metrics=metrics, engine=engine, inference_metrics=inference_metrics)
    if settings.workers > 0:
        services.workers = WorkerPool(settings, jobs, registry, metrics)
    return services


def migrate(services: Services) -> None:
    services.db.upgrade()


def bind_is_safe(services: Services) -> None:
    """Raise ConfigError when this bind would expose an unauthenticated server."""
    try:
        has_keys = services.keys.has_keys()
    except Unavailable:
        has_keys = False
    services.settings.check_bind_is_safe(has_keys)
