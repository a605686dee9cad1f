"""The launcher hands jobs to a child started ahead, replaces it, and never leaves a spare behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from maas.jobs.launcher import ChildLauncher
from maas.jobs.protocol import decode_event
from maas.jobs.worker import child_environment


def job_file(tmp_path: Path, name: str) -> Path:
    """A job file the runner can read but not run: it answers with an error event and exits 1."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "job.json").write_text("{}")
    return folder / "job.json"


def run_to_the_end(child: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    assert child.stdout is not None and child.stdin is not None
    events = [e for line in child.stdout if (e := decode_event(line)) is not None]
    child.stdin.close()
    child.wait(30)
    return events


def test_a_job_goes_to_the_spare_and_a_new_spare_is_started(tmp_path: Path) -> None:
    launcher = ChildLauncher(child_environment(1), keep_spare=True)
    launcher.start()
    spare = launcher._spare
    assert spare is not None and spare.poll() is None
    try:
        child = launcher.launch(job_file(tmp_path, "a"))
        assert child is spare
        events = run_to_the_end(child)
        assert [e["event"] for e in events] == ["error"] and child.returncode == 1
        assert (tmp_path / "a" / "runner.pid").read_text().strip() == str(child.pid)
        assert launcher._spare is not None and launcher._spare is not spare and launcher._spare.poll() is None
    finally:
        launcher.close()


def test_a_dead_spare_means_a_cold_start(tmp_path: Path) -> None:
    launcher = ChildLauncher(child_environment(1), keep_spare=True)
    launcher.start()
    assert launcher._spare is not None
    dead = launcher._spare
    dead.kill()
    dead.wait()
    try:
        child = launcher.launch(job_file(tmp_path, "b"))
        assert child is not dead
        assert [e["event"] for e in run_to_the_end(child)] == ["error"]
    finally:
        launcher.close()
        for stream in (dead.stdin, dead.stdout, dead.stderr):
            if stream is not None:
                stream.close()


def test_close_ends_the_spare_and_starts_no_other(tmp_path: Path) -> None:
    launcher = ChildLauncher(child_environment(1), keep_spare=True)
    launcher.start()
    spare = launcher._spare
    assert spare is not None
    launcher.close()
    assert spare.returncode is not None
    child = launcher.launch(job_file(tmp_path, "c"))  # after close: a cold start, and no new spare
    assert launcher._spare is None
    run_to_the_end(child)


def test_a_spare_whose_worker_died_exits_by_itself() -> None:
    """EOF on stdin (the worker's end of the pipe closed, as when the server is killed) ends a standby child."""
    launcher = ChildLauncher(child_environment(1), keep_spare=True)
    launcher.start()
    spare = launcher._spare
    assert spare is not None and spare.stdin is not None
    spare.stdin.close()
    assert spare.wait(60) == 0
    launcher.close()


def test_without_keep_spare_every_job_starts_cold(tmp_path: Path) -> None:
    launcher = ChildLauncher({**os.environ}, keep_spare=False)
    launcher.start()
    assert launcher._spare is None
    child = launcher.launch(job_file(tmp_path, "d"))
    assert launcher._spare is None
    assert [e["event"] for e in run_to_the_end(child)] == ["error"]
    launcher.close()
