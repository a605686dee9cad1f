"""The ``maas`` client commands against a real server: train with --follow, jobs, models, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def maas(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAAS_URL": server.url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "maas", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_train_follow_then_browse_jobs_and_models(server: Server) -> None:
    trained = maas(server, "train", "--dataset", "iris", "--epochs", "5", "--follow")

    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert re.search(r"registered iris version 1: accuracy \d", trained.stdout), trained.stdout
    job_id = re.search(r"job ([0-9a-f]{32}) queued", trained.stdout).group(1)  # type: ignore[union-attr]

    listed = maas(server, "jobs", "list")
    assert job_id in listed.stdout and "succeeded" in listed.stdout and "iris v1" in listed.stdout
    shown = maas(server, "jobs", "show", job_id)
    assert shown.returncode == 0 and "val_accuracy" in shown.stdout
    assert [line.split()[0] for line in shown.stdout.splitlines() if re.match(r"\s*\d+\s", line)] == \
        ["1", "2", "3", "4", "5"]
    assert "iris" in maas(server, "models", "list").stdout
    model = maas(server, "models", "show", "iris")
    assert "torch, onnx" in model.stdout and "accuracy" in model.stdout


def test_failed_job_and_api_errors_exit_non_zero(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"hyperparameters": {"lr": 1e30, "epochs": 3}}))

    failed = maas(server, "train", "--dataset", "iris", "--spec", str(spec), "--follow")
    missing = maas(server, "jobs", "show", "no-such-job")
    invalid = maas(server, "train", "--dataset", "iris", "--arch", "transformer")

    assert failed.returncode == 1 and "loss became NaN" in failed.stderr
    assert missing.returncode == 1 and "job_not_found" in missing.stderr
    assert invalid.returncode == 1 and "422" in invalid.stderr


def test_unreachable_server_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "maas", "models", "list", "--url", "http://127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2 and "cannot reach the server" in result.stderr
