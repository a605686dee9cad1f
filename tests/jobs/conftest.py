"""Fixtures of the job tests: a real database and artifact store, a real worker pool, real child processes.

The settings are tuned for tests: workers poll and heartbeat every few hundred milliseconds, so a cancel or a
crash is noticed at once, and a job gets two attempts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maas.api.deps import Services
from maas.bootstrap import build_services, migrate
from maas.config import Settings
from maas.jobs.worker import WorkerPool
from maas.registry.entities import Job
from tests import factories

TENANT = "default"
FAST = {"poll_seconds": 0.1, "heartbeat_seconds": 0.3, "lease_seconds": 10.0, "max_attempts": 2}

ServicesFactory = Callable[..., Services]


@pytest.fixture
def make_services(tmp_path: Path, database_url: str) -> Iterator[ServicesFactory]:
    """``make_services(**settings)``: services on one shared data dir and database; worker pools not started."""
    built: list[Services] = []

    def factory(**overrides: Any) -> Services:
        settings = Settings(data_dir=tmp_path / "data", database_url=database_url, **{**FAST, **overrides})
        services = build_services(settings)
        migrate(services)
        built.append(services)
        return services

    yield factory
    for services in built:
        if services.workers is not None:
            services.workers.stop(timeout=10)
        services.db.engine.dispose()


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services()


@pytest.fixture
def pool(services: Services) -> WorkerPool:
    assert services.workers is not None
    services.workers.start()
    return services.workers


def submit(services: Services, dataset: str = "iris", **hyperparameters: Any) -> Job:
    """What ``POST /train`` does once the body is validated."""
    spec = {"dataset": dataset, "model": dataset, "hyperparameters": {"epochs": 3, **hyperparameters}}
    services.registry.ensure_dataset(TENANT, dataset)
    return services.jobs.submit(TENANT, "train", spec)


def wait_for(services: Services, job_id: str, predicate: Callable[[Job], bool], timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = services.jobs.get(TENANT, job_id)
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on job {job_id}: {job.status}, {job.progress}, {job.error}")
        time.sleep(0.05)


def finished(job: Job) -> bool:
    return job.finished


def runner_pids(services: Services, job_id: str) -> list[int]:
    return factories.runner_pids(services.settings.checkpoints_dir, job_id)


def kill_runner(services: Services, job_id: str, sig: int, timeout: float = 60, not_pid: int | None = None) -> int:
    """Signal this job's child process (other than ``not_pid``) as soon as it exists; returns its pid."""
    deadline = time.monotonic() + timeout
    while not (pids := [p for p in runner_pids(services, job_id) if p != not_pid]):
        if time.monotonic() > deadline:
            raise AssertionError(f"no runner process for job {job_id}")
        time.sleep(0.05)
    os.kill(pids[0], sig)
    return pids[0]
