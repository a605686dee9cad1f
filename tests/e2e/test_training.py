"""Training as a service against real ``maas serve`` processes: the SSE story, crash resume, two replicas."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, fresh_postgres_database
from tests.e2e.conftest import Server
from tests.factories import runner_pids

pytestmark = pytest.mark.e2e

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Short leases so a restarted server re-queues the killed server's job within seconds.
SHORT_LEASE = {"MAAS_LEASE_SECONDS": "3", "MAAS_HEARTBEAT_SECONDS": "1", "MAAS_POLL_SECONDS": "0.2"}


def follow(http: httpx.Client, job_id: str, timeout: float = 120) -> list[tuple[str, dict[str, Any]]]:
    """Read ``/jobs/{id}/events`` until ``end``: (event, data) pairs."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    with http.stream("GET", f"/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if name == "end":
                    break
    return events


def wait_job(http: httpx.Client, job_id: str, until: Callable[[dict[str, Any]], bool],
             timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} timed out: {job['status']} {job['progress']} {job['error']}")
        time.sleep(0.1)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def test_train_digits_and_follow_the_events(server: Server) -> None:
    with server.client() as http:
        submitted = http.post("/train", json={"dataset": "digits", "hyperparameters": {"epochs": 15}})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]

        events = follow(http, job_id)

        assert events[-1] == ("end", {"status": "succeeded"})
        progress = [data for name, data in events if name == "progress"]
        assert {p["status"] for p in progress} >= {"running", "succeeded"}
        assert progress[-1]["model"] == {"name": "digits", "version": 1}
        epochs_seen = [p["progress"]["epoch"] for p in progress]
        assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] == 15
        history = progress[-1]["history"]
        assert [h["epoch"] for h in history] == list(range(1, 16))
        assert all({"train_loss", "val_loss", "val_accuracy"} <= set(h) for h in history)

        version = http.get("/models/digits/versions/1").json()
        assert version["metrics"]["accuracy"] >= 0.95
        assert {a["kind"] for a in version["artifacts"]} == {"torch", "onnx"}
        dataset = http.get("/datasets/digits").json()
        assert version["lineage"]["job_id"] == job_id
        assert version["lineage"]["dataset_sha256"] == dataset["sha256"]
        assert version["lineage"]["hyperparameters"]["hyperparameters"]["epochs"] == 15

        curves = http.get(f"/jobs/{job_id}/curves.png")
        assert curves.headers["content-type"] == "image/png" and curves.content.startswith(PNG_MAGIC)


def test_killed_server_resumes_the_job_from_its_checkpoint(launch: Callable[..., Server], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = launch(data_dir=data_dir, **SHORT_LEASE)
    # ~10 s of training (batch 16: 4x the steps of the default), so the kill lands mid-run.
    spec = {"dataset": "digits", "hyperparameters": {"epochs": 60, "batch_size": 16, "early_stopping": None}}
    with first.client() as http:
        job_id = http.post("/train", json=spec).json()["job_id"]
        before = wait_job(http, job_id, lambda j: j["progress"]["epoch"] >= 2 or finished(j))
    assert before["status"] == "running", "the job ended before the server could be killed"
    assert runner_pids(data_dir / "checkpoints", job_id), "no training process found for the running job"

    first.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while runner_pids(data_dir / "checkpoints", job_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner_pids(data_dir / "checkpoints", job_id) == [], "the training process outlived its server"

    second = launch(data_dir=data_dir, **SHORT_LEASE)
    with second.client() as http:
        done = wait_job(http, job_id, finished, timeout=150)
        versions = http.get("/models/digits/versions").json()

    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert [h["epoch"] for h in done["history"]] == list(range(1, 61))
    # Resumed, not restarted: every epoch reported before the kill kept its original row (and timing).
    reported = [(h["epoch"], h["seconds"]) for h in before["history"]]
    assert [(h["epoch"], h["seconds"]) for h in done["history"][:len(reported)]] == reported
    assert versions["total"] == 1 and versions["items"][0]["lineage"]["job_id"] == job_id


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("MAAS_TEST_DATABASE_URL is not set")
    yield from fresh_postgres_database(PG_URL)


def test_two_replicas_never_run_a_job_twice(launch: Callable[..., Server], tmp_path: Path,
                                            postgres_url: str) -> None:
    # One database and one artifact store, as replicas on a shared filesystem would have.
    replicas = [launch(data_dir=tmp_path / "shared", database_url=postgres_url, MAAS_POLL_SECONDS="0.2")
                for _ in range(2)]
    clients = [replica.client() for replica in replicas]
    spec = {"dataset": "iris", "hyperparameters": {"epochs": 3}}
    job_ids = [clients[i % 2].post("/train", json=spec).json()["job_id"] for i in range(6)]

    jobs = [wait_job(clients[i % 2], job_id, finished, timeout=150) for i, job_id in enumerate(job_ids)]
    versions = clients[0].get("/models/iris/versions", params={"limit": 50}).json()
    per_replica = [succeeded_here(client) for client in clients]
    for client in clients:
        client.close()

    assert [(j["status"], j["attempts"]) for j in jobs] == [("succeeded", 1)] * 6
    assert sorted(v["version"] for v in versions["items"]) == [1, 2, 3, 4, 5, 6]
    assert sorted(v["lineage"]["job_id"] for v in versions["items"]) == sorted(job_ids)
    assert sum(per_replica) == 6 and min(per_replica) >= 1, per_replica  # both replicas took jobs


def succeeded_here(http: httpx.Client) -> int:
    """Train jobs this replica finished successfully, from its own Prometheus counter."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('maas_jobs_finished_total{kind="train",status="succeeded"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
