"""The job queue is a table. Workers claim with a lease, heartbeat it, and finish under it.

A claim takes the oldest queued job: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so replicas never claim the
same row; on SQLite the ``BEGIN IMMEDIATE`` of every unit of work serialises claimers. Every later write by a
worker names its lease owner, so a worker that lost its lease (it stalled, another replica re-queued the job)
cannot overwrite the job any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from maas.errors import IdempotencyMismatch, InvalidInput, JobNotCancellable, JobNotFound
from maas.registry import repositories as repo
from maas.registry.db import Database
from maas.registry.entities import Job, Page, clamp_page
from maas.registry.orm import JobRow, utcnow

JOB_KINDS = ("train", "export", "distill", "predict_batch")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


def request_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._submit_hooks: list[Callable[[], None]] = []

    def on_submit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after each new job is committed (this replica's idle workers start it without polling)."""
        self._submit_hooks.append(hook)

    # --- client side ---------------------------------------------------------------------------------
    def submit(self, tenant: str, kind: str, spec: dict[str, Any], idempotency_key: str | None = None) -> Job:
        """Queue a job; a replayed ``Idempotency-Key`` returns the original job (another body is a 422)."""
        if kind not in JOB_KINDS:
            raise InvalidInput(f"Unknown job kind {kind!r}.")
        digest = request_hash({"kind": kind, "spec": spec})
        if idempotency_key is not None:
            replay = self._replay(tenant, idempotency_key, digest)
            if replay is not None:
                return replay
        with self.db.session() as s:
            row = JobRow(tenant=tenant, kind=kind, spec=spec, status="queued", progress={}, history=[],
                         idempotency_key=idempotency_key, request_hash=digest)
            s.add(row)
            s.flush()
            job = repo.job_entity(row)
        for hook in self._submit_hooks:
            hook()
        return job

    def _replay(self, tenant: str, key: str, digest: str) -> Job | None:
        with self.db.session() as s:
            row = repo.find_job_by_idempotency_key(s, tenant, key)
            if row is None:
                return None
            if row.request_hash != digest:
                raise IdempotencyMismatch("This Idempotency-Key was already used with a different request body.")
            return repo.job_entity(row, repo.job_result(s, row))

    def get(self, tenant: str | None, job_id: str) -> Job:
        with self.db.session() as s:
            row = repo.find_job(s, job_id, tenant)
            if row is None:
                raise JobNotFound(f"No job {job_id!r}.")
            return repo.job_entity(row, repo.job_result(s, row))

    def list_jobs(self, tenant: str, *, status: str | None = None, kind: str | None = None,
             offset: int = 0, limit: int = 50) -> Page:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}.")
        if kind is not None and kind not in JOB_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(JOB_KINDS)}.")
        offset, limit = clamp_page(offset, limit)
        with self.db.session() as s:
            items, total = repo.list_jobs(s, tenant, {"status": status, "kind": kind}, offset, limit)
        return Page(items=items, total=total, offset=offset, limit=limit)

    def cancel(self, tenant: str, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one is flagged and its worker kills it."""
        with self.db.session() as s:
            row = repo.find_job(s, job_id, tenant, for_update=True)
            if row is None:
                raise JobNotFound(f"No job {job_id!r}.")
            if row.status in FINISHED:
                raise JobNotCancellable(f"Job {job_id} already {row.status}.")
            if row.status == "queued":
                row.status, row.finished_at, row.error = "cancelled", utcnow(), "cancelled by the user"
            else:
                row.cancel_requested = True
            return repo.job_entity(row)

    # --- worker side ---------------------------------------------------------------------------------
    def claim(self, owner: str, lease_seconds: float, kinds: tuple[str, ...] = JOB_KINDS) -> Job | None:
        with self.db.session() as s:
            query = (select(JobRow).where(JobRow.status == "queued", JobRow.kind.in_(kinds))
                     .order_by(JobRow.created_at, JobRow.id).limit(1))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            row = s.scalars(query).first()
            if row is None:
                return None
            now = utcnow()
            row.status, row.lease_owner = "running", owner
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.attempts += 1
            row.started_at = row.started_at or now
            return repo.job_entity(row)

    def heartbeat(self, job_id: str, owner: str, lease_seconds: float) -> Job | None:
        """Extend our lease; None when the lease is no longer ours (the job must be abandoned)."""
        with self.db.session() as s:
            row = self._owned(s, job_id, owner)
            if row is None:
                return None
            row.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
            return repo.job_entity(row)

    def report_progress(self, job_id: str, owner: str, progress: dict[str, Any],
                        history: list[dict[str, Any]] | None = None, checkpoint: str | None = None) -> bool:
        with self.db.session() as s:
            row = self._owned(s, job_id, owner)
            if row is None:
                return False
            row.progress = progress
            if history is not None:
                row.history = history
            if checkpoint is not None:
                row.checkpoint = checkpoint
            return True

    def finish(self, job_id: str, owner: str, status: str, *, error: str | None = None,
               result_version_id: str | None = None) -> bool:
        if status not in FINISHED:
            raise ValueError(status)
        with self.db.session() as s:
            row = self._owned(s, job_id, owner)
            if row is None:
                return False
            row.status, row.error, row.finished_at = status, error, utcnow()
            row.result_version_id = result_version_id or row.result_version_id
            row.lease_owner, row.lease_expires_at = None, None
            return True

    def release(self, job_id: str, owner: str) -> bool:
        """Give a running job back to the queue (graceful shutdown); the attempt does not count."""
        with self.db.session() as s:
            row = self._owned(s, job_id, owner)
            if row is None:
                return False
            row.status, row.lease_owner, row.lease_expires_at = "queued", None, None
            row.attempts = max(0, row.attempts - 1)
            return True

    def retry_later(self, job_id: str, owner: str, error: str) -> bool:
        """Put a job whose attempt failed back in the queue (the attempt counts)."""
        with self.db.session() as s:
            row = self._owned(s, job_id, owner)
            if row is None:
                return False
            row.status, row.error, row.lease_owner, row.lease_expires_at = "queued", error, None, None
            return True

    def requeue_expired(self, max_attempts: int, now: datetime | None = None) -> list[str]:
        """Re-queue running jobs whose lease ran out (their replica died); fail those out of attempts."""
        now = now or utcnow()
        touched: list[str] = []
        with self.db.session() as s:
            query = select(JobRow).where(JobRow.status == "running")
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            for row in s.scalars(query):
                expires = repo.aware(row.lease_expires_at)
                if expires is not None and expires > now:
                    continue
                if row.attempts >= max_attempts:
                    row.status, row.finished_at = "failed", now
                    row.error = f"gave up after {row.attempts} attempts (the worker running it stopped)"
                elif row.cancel_requested:
                    row.status, row.finished_at, row.error = "cancelled", now, "cancelled by the user"
                else:
                    row.status = "queued"
                row.lease_owner, row.lease_expires_at = None, None
                touched.append(row.id)
        return touched

    @staticmethod
    def _owned(s: Any, job_id: str, owner: str) -> JobRow | None:
        row = repo.find_job(s, job_id, for_update=True)
        if row is None or row.lease_owner != owner or row.status != "running":
            return None
        return row
