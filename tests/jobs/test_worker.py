"""The worker with real child processes on iris against a real database: success, cancel, failures, shutdown."""

from __future__ import annotations

import signal
import time
from typing import Any

from maas.api.deps import Services
from maas.jobs.worker import Supervision, WorkerPool
from tests.jobs.conftest import (
    TENANT,
    ServicesFactory,
    finished,
    kill_runner,
    runner_pids,
    submit,
    wait_for,
)

# No early stopping: these jobs must still be running when the test acts on them.
LONG: dict[str, Any] = {"epochs": 1000, "early_stopping": None}


def test_job_trains_and_registers_a_version(services: Services, pool: WorkerPool) -> None:
    job = wait_for(services, submit(services).id, finished, timeout=120)

    assert job.status == "succeeded", job.error
    assert job.attempts == 1 and job.error is None
    assert [h["epoch"] for h in job.history] == [1, 2, 3]
    assert all({"train_loss", "val_loss", "val_accuracy"} <= set(h) for h in job.history)
    assert (job.result_model, job.result_version) == ("iris", 1)
    version = services.registry.get_version(TENANT, "iris", 1)
    dataset = services.registry.get_dataset(TENANT, "iris")
    assert version.metrics["accuracy"] > 0.5
    assert version.lineage["job_id"] == job.id and version.source_job_id == job.id
    assert version.dataset_sha256 == dataset.sha256
    assert {a.kind for a in version.artifacts} == {"torch", "onnx"}


def test_cancel_stops_a_running_job_within_seconds(services: Services, pool: WorkerPool) -> None:
    job = submit(services, **LONG)
    wait_for(services, job.id, lambda j: j.progress.get("epoch", 0) >= 1)

    asked = time.monotonic()
    services.jobs.cancel(TENANT, job.id)
    job = wait_for(services, job.id, finished, timeout=10)

    assert job.status == "cancelled" and time.monotonic() - asked < 5
    assert runner_pids(services, job.id) == []
    assert job.result_version is None


def test_nan_loss_fails_with_a_clear_error_and_is_not_retried(services: Services, pool: WorkerPool) -> None:
    job = wait_for(services, submit(services, lr=1e30).id, finished, timeout=120)

    assert job.status == "failed" and job.attempts == 1
    assert job.error is not None and "loss became" in job.error and "lower lr" in job.error


def test_crashed_child_is_retried_then_failed_with_the_reason(services: Services, pool: WorkerPool) -> None:
    job = submit(services, **LONG)
    first = kill_runner(services, job.id, signal.SIGKILL)
    retried = wait_for(services, job.id, lambda j: j.attempts == 2 and j.status == "running")
    assert retried.error is not None and "SIGKILL" in retried.error  # the reason stays visible while it retries

    kill_runner(services, job.id, signal.SIGKILL, not_pid=first)
    job = wait_for(services, job.id, finished)

    assert job.status == "failed" and job.attempts == 2  # MAAS_MAX_ATTEMPTS is 2 in these tests
    assert job.error is not None and "killed by SIGKILL" in job.error


def test_stop_releases_the_job_and_the_next_pool_resumes_it(make_services: ServicesFactory) -> None:
    first = make_services()
    assert first.workers is not None
    first.workers.start()
    job = submit(first, epochs=80, early_stopping=None)
    running = wait_for(first, job.id, lambda j: j.progress.get("epoch", 0) >= 3)

    first.workers.stop()
    released = first.jobs.get(TENANT, job.id)
    assert released.status == "queued" and released.attempts == 0 and released.lease_owner is None
    assert runner_pids(first, job.id) == []

    second = make_services()
    assert second.workers is not None
    second.workers.start()
    done = wait_for(second, job.id, finished, timeout=180)

    assert done.status == "succeeded", done.error
    assert [h["epoch"] for h in done.history] == list(range(1, 81))
    # Resumed, not restarted: the epochs trained before the stop keep their original timings.
    before = [(h["epoch"], h["seconds"]) for h in running.history]
    assert [(h["epoch"], h["seconds"]) for h in done.history[:len(before)]] == before


def test_a_job_queued_in_this_replica_starts_without_waiting_for_the_poll(make_services: ServicesFactory) -> None:
    services = make_services(poll_seconds=60)
    assert services.workers is not None
    services.workers.start()
    time.sleep(0.2)  # the worker has polled once and is asleep

    queued = time.monotonic()
    job = submit(services)
    wait_for(services, job.id, lambda j: j.status != "queued", timeout=5)

    assert time.monotonic() - queued < 2


def test_a_resumed_attempt_adopts_the_checkpoint_history(services: Services) -> None:
    # The killed attempt checkpointed epochs 1-3 but the server died before it recorded epoch 3.
    assert services.workers is not None
    worker = services.workers.workers[0]
    job = submit(services)
    claimed = services.jobs.claim(worker.owner, 30)
    assert claimed is not None and claimed.id == job.id
    checkpointed = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0, "seconds": 0.1} for e in (1, 2, 3)]

    Supervision(worker, claimed)._handle({"event": "started", "resumed": True, "history": checkpointed})

    stored = services.jobs.get(TENANT, job.id)
    assert stored.history == checkpointed and stored.progress["epoch"] == 3
