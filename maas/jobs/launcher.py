"""Starting job children one ahead: a spare ``maas.jobs.runner`` that has done its imports waits for a job.

A fresh child spends ~2 s (on 2 cores) importing torch, scikit-learn and the ONNX exporter before it reads its
first byte of data; for a 30 s job that alone is 7%. So each worker keeps one child started ahead, in standby
(``python -m maas.jobs.runner --standby``): it imports everything, then blocks reading stdin. Launching a job
hands it the job file's path on that pipe, and a new spare is started for the next job while this one trains.
A spare that died meanwhile, or a launcher told not to keep one, falls back to a cold start with the job file on
the command line. The worker keeps holding the child's stdin either way: EOF there means the worker is gone,
and a child in standby or in training then exits by itself.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

RUNNER = [sys.executable, "-m", "maas.jobs.runner"]
STANDBY_FLAG = "--standby"


class ChildLauncher:
    def __init__(self, env: dict[str, str], *, keep_spare: bool) -> None:
        self._env = env
        self._keep_spare = keep_spare
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the first spare (a no-op without ``keep_spare``)."""
        self._replenish()

    def launch(self, job_file: Path) -> subprocess.Popen[bytes]:
        """A child running ``job_file``: the spare when it is alive, else a fresh process."""
        with self._lock:
            spare, self._spare = self._spare, None
        child = _hand_over(spare, job_file) if spare is not None else None
        if child is None:
            child = self._popen(str(job_file))
        self._replenish()
        return child

    def close(self) -> None:
        """Stop the spare; a child already running a job is its supervisor's business."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            _stop(spare)

    def _replenish(self) -> None:
        with self._lock:
            if not self._keep_spare or self._closed or self._spare is not None:
                return
            self._spare = self._popen(STANDBY_FLAG)

    def _popen(self, argument: str) -> subprocess.Popen[bytes]:
        # Its own process group: a cancel kills the child and whatever it started, and nothing else.
        return subprocess.Popen([*RUNNER, argument], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=self._env)


def _hand_over(spare: subprocess.Popen[bytes], job_file: Path) -> subprocess.Popen[bytes] | None:
    """Give ``job_file`` to ``spare``; None when the spare is no longer there to take it."""
    if spare.poll() is not None:
        log.warning("the standby job child exited (code %s); starting a fresh one", spare.returncode)
        return None
    assert spare.stdin is not None
    try:
        spare.stdin.write(f"{job_file}\n".encode())
        spare.stdin.flush()
    except OSError:  # it died between the poll and the write
        _stop(spare)
        return None
    return spare


def _stop(child: subprocess.Popen[bytes]) -> None:
    """EOF on stdin ends a child in standby at once; SIGKILL if it is stuck in its imports."""
    with contextlib.suppress(OSError):
        if child.stdin is not None:
            child.stdin.close()
    try:
        child.wait(2)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()
