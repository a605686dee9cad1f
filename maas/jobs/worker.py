"""Job workers: threads in ``maas serve`` that claim jobs and supervise one child process each.

A worker claims a job under a lease, writes the job file, hands it to a ``python -m maas.jobs.runner`` in its
own process group (one started ahead, see ``launcher``), and then loops: read the child's events (progress ->
the jobs row), renew the lease, watch for cancellation. The child's result becomes a registered model version
and the job succeeds, in that order; the version is keyed by the job id, so a job re-run after a crash
registers once.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from maas.config import Settings
from maas.errors import MaasError
from maas.jobs.launcher import ChildLauncher
from maas.jobs.protocol import EXIT_CANCELLED, decode_event
from maas.jobs.registration import register_training_result
from maas.observability.metrics import Metrics
from maas.registry.entities import Job
from maas.registry.jobs import JobQueue
from maas.registry.service import RegistryService

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 20.0


class WorkerPool:
    def __init__(self, settings: Settings, jobs: JobQueue, registry: RegistryService, metrics: Metrics) -> None:
        self.settings = settings
        self.jobs, self.registry, self.metrics = jobs, registry, metrics
        self.owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        # Set when this replica queues a job or stops: an idle worker wakes at once instead of at its next poll.
        self.wakeup = threading.Event()
        jobs.on_submit(self.wakeup.set)
        self.workers = [JobWorker(self, i) for i in range(settings.workers)]

    def start(self) -> None:
        touched = self.jobs.requeue_expired(self.settings.max_attempts)
        if touched:
            log.info("re-queued %d job(s) whose replica stopped: %s", len(touched), touched)
        for worker in self.workers:
            worker.launcher.start()
            worker.thread.start()

    def stop(self, timeout: float = SHUTDOWN_GRACE_SECONDS + 5) -> None:
        """Ask children to checkpoint and exit, release their jobs, and join the threads."""
        self.stopping.set()
        self.wakeup.set()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            if worker.thread.is_alive():
                worker.thread.join(max(0.1, deadline - time.monotonic()))
            worker.launcher.close()

    def alive(self) -> bool:
        return self.stopping.is_set() or all(w.thread.is_alive() for w in self.workers)



class JobWorker:
    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.owner = f"{pool.owner_prefix}:{index}"
        self.thread = threading.Thread(target=self.run, name=f"maas-job-worker-{index}", daemon=True)
        settings = pool.settings
        self.launcher = ChildLauncher(child_environment(settings.workers), keep_spare=settings.warm_child)

    def run(self) -> None:
        settings, jobs = self.pool.settings, self.pool.jobs
        next_sweep = time.monotonic() + settings.lease_seconds
        while not self.pool.stopping.is_set():
            try:
                if time.monotonic() >= next_sweep:
                    jobs.requeue_expired(settings.max_attempts)
                    next_sweep = time.monotonic() + settings.lease_seconds
                self.pool.wakeup.clear()  # before the claim: a job queued after it sets the event again
                job = jobs.claim(self.owner, settings.lease_seconds)
            except MaasError as exc:
                log.warning("job queue unavailable: %s", exc.message)
                job = None
            if job is None:
                self.pool.wakeup.wait(settings.poll_seconds)
                continue
            try:
                Supervision(self, job).run()
            except Exception:
                log.exception("supervising job %s failed", job.id)
                self._finish(job, "failed", error="internal error while supervising the job")

    def _finish(self, job: Job, status: str, **kwargs: Any) -> None:
        try:
            if self.pool.jobs.finish(job.id, self.owner, status, **kwargs):
                self.pool.metrics.jobs_finished.labels(job.kind, status).inc()
        except MaasError:
            log.exception("could not record the end of job %s", job.id)


class Supervision:
    """One attempt at one job: the child process and everything the worker does while it runs."""

    def __init__(self, worker: JobWorker, job: Job) -> None:
        self.worker, self.job = worker, job
        self.pool = worker.pool
        self.settings = self.pool.settings
        self.workdir = self.settings.checkpoints_dir / job.id
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.history: list[dict[str, Any]] = list(job.history)
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.cancelled = False

    def run(self) -> None:
        started = time.monotonic()
        self.pool.metrics.jobs_running.inc()
        try:
            self._run()
        finally:
            self.pool.metrics.jobs_running.dec()
            self.pool.metrics.job_duration.labels(self.job.kind).observe(time.monotonic() - started)

    def _run(self) -> None:
        try:
            job_file = self._write_job_file()
        except MaasError as exc:
            self.worker._finish(self.job, "failed", error=exc.message)
            return
        child = self._spawn(job_file)
        outcome = self._supervise(child)
        self._conclude(outcome, child.returncode)

    def _write_job_file(self) -> Path:
        spec = self.job.spec
        dataset = self.pool.registry.ensure_dataset(self.job.tenant, spec["dataset"])
        self.dataset = dataset
        self.workdir.mkdir(parents=True, exist_ok=True)
        body = {"job_id": self.job.id, "spec": {k: v for k, v in spec.items()},
                "dataset": {"id": dataset.id, "sha256": dataset.sha256, "format": dataset.format,
                            "target": dataset.schema.get("target"), "task": dataset.task},
                "artifacts_dir": str(self.settings.artifacts_dir.resolve()),
                "checkpoint": str((self.workdir / "checkpoint.pt").resolve()),
                "device": spec.get("device") if spec.get("device", "auto") != "auto" else self.settings.device}
        path = self.workdir / "job.json"
        path.write_bytes(orjson.dumps(body))
        return path

    def _spawn(self, job_file: Path) -> subprocess.Popen[bytes]:
        child = self.worker.launcher.launch(job_file)
        threading.Thread(target=self._read_events, args=(child,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(child,), daemon=True).start()
        return child

    def _read_events(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            event = decode_event(line)
            if event is not None:
                self.events.put(event)
        self.events.put(None)

    def _read_stderr(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        for line in child.stderr:
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.debug("job %s: %s", self.job.id, text)

    def _supervise(self, child: subprocess.Popen[bytes]) -> str:
        """Pump events and heartbeats until the child ends; returns how it ended."""
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        while True:
            try:
                event = self.events.get(timeout=0.25)
            except queue.Empty:
                event = {}
            if event is None:
                child.wait()
                return "exited"
            if event:
                self._handle(event)
            if self.pool.stopping.is_set():
                self._stop_child(child, SHUTDOWN_GRACE_SECONDS)
                return "shutdown"
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.settings.heartbeat_seconds
                verdict = self._beat(child)
                if verdict:
                    return verdict

    def _beat(self, child: subprocess.Popen[bytes]) -> str | None:
        try:
            current = self.pool.jobs.heartbeat(self.job.id, self.worker.owner, self.settings.lease_seconds)
        except MaasError:
            return None  # the database blinked; the lease still has time, try again next beat
        if current is None:
            log.warning("job %s: lease lost, abandoning the attempt", self.job.id)
            self._kill(child)
            return "lease_lost"
        if current.cancel_requested:
            self._kill(child)
            return "cancelled"
        return None

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "started" and event.get("history"):
            self._resume_history(event["history"])
        elif kind == "epoch":
            entry = {"epoch": event["epoch"], "train_loss": event["train_loss"], "val_loss": event["val_loss"],
                     **_prefixed(event.get("val_metrics", {})), "seconds": event.get("seconds")}
            self.history = [h for h in self.history if h.get("epoch", 0) < event["epoch"]] + [entry]
            progress = {"epoch": event["epoch"], "epochs": event["epochs"], **entry}
            self.pool.jobs.report_progress(self.job.id, self.worker.owner, progress, self.history,
                                           checkpoint=event.get("checkpoint"))
        elif kind == "result":
            self.result = event
        elif kind == "error":
            self.error = event

    def _resume_history(self, history: list[dict[str, Any]]) -> None:
        """Adopt the checkpoint's history: it may hold epochs the dead attempt finished but never reported."""
        self.history = list(history)
        last = self.history[-1]
        progress = {"epoch": last["epoch"], "epochs": self.job.progress.get("epochs"), **last}
        self.pool.jobs.report_progress(self.job.id, self.worker.owner, progress, self.history)

    def _conclude(self, outcome: str, returncode: int | None) -> None:
        jobs, owner = self.pool.jobs, self.worker.owner
        if outcome == "lease_lost":
            return
        if outcome == "cancelled":
            self.worker._finish(self.job, "cancelled", error="cancelled by the user")
        elif outcome == "shutdown":
            jobs.release(self.job.id, owner)
        elif self.result is not None and returncode == 0:
            try:
                version = register_training_result(self.pool.registry, self.job, self.dataset, self.result)
            except MaasError as exc:  # e.g. the model name belongs to a model of another task
                self.worker._finish(self.job, "failed", error=f"could not register the model: {exc.message}")
                return
            self.worker._finish(self.job, "succeeded", result_version_id=version.id)
        elif returncode == EXIT_CANCELLED:
            jobs.release(self.job.id, owner)
        else:
            self._failed(returncode)

    def _failed(self, returncode: int | None) -> None:
        retryable = self.error is None or bool(self.error.get("retryable"))
        message = (self.error or {}).get("message") or _describe_exit(returncode, self.stderr_tail)
        if retryable and self.job.attempts < self.settings.max_attempts:
            log.warning("job %s attempt %d failed (%s); re-queued", self.job.id, self.job.attempts, message)
            self.pool.jobs.retry_later(self.job.id, self.worker.owner, message)
        else:
            self.worker._finish(self.job, "failed", error=message)

    def _stop_child(self, child: subprocess.Popen[bytes], grace: float) -> None:
        """SIGTERM: the child checkpoints at the next batch and exits; SIGKILL if it does not in time."""
        _signal_group(child, signal.SIGTERM)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            self._kill(child)

    def _kill(self, child: subprocess.Popen[bytes]) -> None:
        _signal_group(child, signal.SIGKILL)
        try:
            child.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("job %s: child %d did not die", self.job.id, child.pid)


def child_environment(workers: int) -> dict[str, str]:
    """The child's environment: unbuffered events, and a share of the CPU cores for its math threads.

    One core is left to the server (API, inference, the other supervisors), the rest split between the
    replica's concurrent jobs. Oversubscribed cores are what hurts: libgomp threads spin while they wait, and a
    spinning thread waiting for one that is not scheduled turned a 30 ms iris epoch into 4 s (2 shared cores,
    2 threads). On small networks one thread is as fast as two anyway (digits MLP, batch 64: 1.76 vs 1.78 ms a
    step on an idle core pair). Values already set in the server's environment win.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = str(max(1, (cores - 1) // max(1, workers)))
    defaults = {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}
    return {**defaults, **os.environ, "PYTHONUNBUFFERED": "1"}


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


def _describe_exit(returncode: int | None, tail: collections.deque[str]) -> str:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if returncode == -signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}"
    last = next((line for line in reversed(tail) if line.strip()), "")
    return f"the training process exited with code {returncode}" + (f": {last[:300]}" if last else "")


def _prefixed(metrics: dict[str, Any]) -> dict[str, Any]:
    return {(k if k.startswith("val_") else f"val_{k}"): v for k, v in metrics.items()}
