"""The job queue table: claims, leases, heartbeats, idempotency and expiry, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from maas.errors import IdempotencyMismatch, InvalidInput, JobNotCancellable, JobNotFound
from maas.registry.jobs import JobQueue
from maas.registry.orm import utcnow


def test_submit_claim_finish(queue: JobQueue) -> None:
    job = queue.submit("t1", "train", {"dataset": "iris"})
    assert job.status == "queued"
    claimed = queue.claim("w1", lease_seconds=30)
    assert claimed is not None and claimed.id == job.id and claimed.status == "running" and claimed.attempts == 1
    assert queue.claim("w2", lease_seconds=30) is None
    assert queue.report_progress(job.id, "w1", {"epoch": 1, "epochs": 3}, [{"epoch": 1, "train_loss": 0.5}])
    assert not queue.report_progress(job.id, "w2", {"epoch": 9}), "a non-owner cannot write"
    assert queue.finish(job.id, "w1", "succeeded")
    done = queue.get("t1", job.id)
    assert done.status == "succeeded" and done.history == [{"epoch": 1, "train_loss": 0.5}] and done.finished_at


def test_jobs_are_tenant_scoped(queue: JobQueue) -> None:
    job = queue.submit("t1", "train", {})
    with pytest.raises(JobNotFound):
        queue.get("t2", job.id)
    assert queue.list_jobs("t2").total == 0


def test_concurrent_claims_never_share_a_job(queue: JobQueue) -> None:
    ids = {queue.submit("t1", "train", {"n": i}).id for i in range(10)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = list(pool.map(lambda i: queue.claim(f"w{i}", 30), range(16)))
    got = [j.id for j in claimed if j is not None]
    assert len(got) == len(set(got)) == 10 and set(got) == ids


def test_idempotency_key(queue: JobQueue) -> None:
    first = queue.submit("t1", "train", {"dataset": "iris"}, idempotency_key="k1")
    again = queue.submit("t1", "train", {"dataset": "iris"}, idempotency_key="k1")
    assert again.id == first.id
    with pytest.raises(IdempotencyMismatch):
        queue.submit("t1", "train", {"dataset": "wine"}, idempotency_key="k1")
    assert queue.submit("t2", "train", {"dataset": "iris"}, idempotency_key="k1").id != first.id


def test_expired_lease_is_requeued_then_failed_after_max_attempts(queue: JobQueue) -> None:
    job = queue.submit("t1", "train", {})
    for attempt in range(1, 4):
        claimed = queue.claim(f"w{attempt}", lease_seconds=1)
        assert claimed is not None and claimed.attempts == attempt
        touched = queue.requeue_expired(max_attempts=3, now=utcnow() + timedelta(seconds=5))
        assert touched == [job.id]
        assert queue.heartbeat(job.id, f"w{attempt}", 30) is None, "the old owner lost its lease"
    final = queue.get("t1", job.id)
    assert final.status == "failed" and "3 attempts" in (final.error or "")


def test_live_lease_is_not_requeued(queue: JobQueue) -> None:
    queue.submit("t1", "train", {})
    job = queue.claim("w1", lease_seconds=60)
    assert job is not None
    assert queue.requeue_expired(max_attempts=3) == []
    assert queue.heartbeat(job.id, "w1", 60) is not None


def test_release_does_not_count_an_attempt(queue: JobQueue) -> None:
    job = queue.submit("t1", "train", {})
    queue.claim("w1", 30)
    assert queue.release(job.id, "w1")
    again = queue.claim("w2", 30)
    assert again is not None and again.attempts == 1


def test_cancel(queue: JobQueue) -> None:
    queued = queue.submit("t1", "train", {"a": 1})
    assert queue.cancel("t1", queued.id).status == "cancelled"
    with pytest.raises(JobNotCancellable):
        queue.cancel("t1", queued.id)
    running = queue.submit("t1", "train", {"a": 2})
    queue.claim("w1", 30)
    flagged = queue.cancel("t1", running.id)
    assert flagged.status == "running" and flagged.cancel_requested


def test_list_filters(queue: JobQueue) -> None:
    a = queue.submit("t1", "train", {"a": 1})
    queue.submit("t1", "train", {"a": 2})
    queue.cancel("t1", a.id)
    assert queue.list_jobs("t1", status="cancelled").total == 1
    assert queue.list_jobs("t1", status="queued").total == 1
    assert queue.list_jobs("t1", limit=1).next_offset == 1
    assert queue.list_jobs("t1", kind="train").total == 2
    for bad in ({"status": "nosuch"}, {"kind": "nosuch"}, {"offset": -1}, {"offset": 2**63}):
        with pytest.raises(InvalidInput):
            queue.list_jobs("t1", **bad)  # type: ignore[arg-type]
