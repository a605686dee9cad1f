"""Training through maas versus a bare PyTorch loop: same model, data, epochs, batch size and device.

maas path: a real ``maas serve`` subprocess (temp data dir), the dataset uploaded as NPZ (or a built-in),
``POST /train``, the job followed over SSE until it succeeds. One short warm-up job runs first (``--cold`` skips
it), so the measured job meets the server as it usually is: a worker's standby child, imports done, waiting.
Reported: wall time from submit to succeeded, the trainer's own time (sum of per-epoch seconds in the job
history) and the fixed per-job overhead in between (claim, data load and split, a checkpoint per epoch, ONNX
export with its parity check, registration).

Bare path: the same MLP from ``maas.training.architectures`` (standardised inputs, BN, dropout), AdamW with the
same lr / weight decay / cosine schedule, tensors on the device, ``randperm`` batches, no validation, checkpoints
or metrics. Both sides train on the same number of rows (maas's train split) with the same CPU threads policy.

    .venv/bin/python scripts/bench_train.py                      # synthetic 40k x 64, 10 classes, 50 epochs
    .venv/bin/python scripts/bench_train.py --dataset digits --epochs 80
    .venv/bin/python scripts/bench_train.py --device cuda --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from maas.jobs.worker import child_environment

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = [256, 256]
LR, WEIGHT_DECAY = 1e-3, 1e-4


@dataclass(frozen=True)
class Workload:
    name: str
    x: np.ndarray
    y: np.ndarray
    npz: bytes | None  # None: a built-in dataset, registered by name


@dataclass(frozen=True)
class MaasTiming:
    total: float  # submit -> succeeded, seen by the client (includes up to 0.5 s of SSE polling)
    server_total: float  # created_at -> finished_at of the job row: the same span without the client's polling
    trainer: float  # sum of the per-epoch seconds the trainer reported
    claim: float  # created_at -> started_at: queued until a worker claimed it
    accuracy: float


def main() -> None:
    args = parse_args()
    # The bare loop gets the CPU threads maas gives its training child (set before torch is imported).
    for key, value in child_environment(workers=1).items():
        if key.endswith("_NUM_THREADS"):
            os.environ.setdefault(key, value)
    workload = make_workload(args)
    bare_runs, maas_runs = [], []
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hurts both sides alike
        bare_runs.append(bare_loop(workload, args))
        maas_runs.append(run_maas(workload, args))
    bare_all_cores = None
    if args.all_cores and args.device == "cpu" and int(os.environ["OMP_NUM_THREADS"]) < _cores():
        bare_all_cores = bare_loop(workload, args, threads=_cores())
    report(workload, args, bare_runs, maas_runs, bare_all_cores)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", help="synthetic, or a built-in name (digits, ...)")
    parser.add_argument("--rows", type=int, default=40_000, help="synthetic rows")
    parser.add_argument("--features", type=int, default=64, help="synthetic features")
    parser.add_argument("--classes", type=int, default=10, help="synthetic classes")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; medians are reported")
    parser.add_argument("--cold", action="store_true",
                        help="time the first job of a fresh server (no warm-up job: its child may still be importing)")
    parser.add_argument("--all-cores", action="store_true",
                        help="also time the bare loop with one thread per core (torch's default)")
    return parser.parse_args()


# --- workload ------------------------------------------------------------------------------------------------
def make_workload(args: argparse.Namespace) -> Workload:
    if args.dataset != "synthetic":
        from maas.datasets.builtin import load_builtin

        data = load_builtin(args.dataset)
        return Workload(args.dataset, np.asarray(data.X, np.float32), np.asarray(data.y), None)
    from maas.datasets.npz import write_npz

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(args.classes, args.features)).astype(np.float32)
    y = rng.integers(0, args.classes, size=args.rows)
    x = (centers[y] + rng.normal(scale=2.0, size=(args.rows, args.features))).astype(np.float32)
    name = f"synthetic-{args.rows}x{args.features}"
    return Workload(name, x, y, write_npz({"X": x, "y": y.astype(np.int64)}))


def train_rows(workload: Workload) -> np.ndarray:
    """maas's train split (default fractions and seed), so both sides train on the same rows."""
    from maas.datasets.splits import split_indices

    return split_indices(workload.y, "classification", 0.1, 0.2, 0)[0]


# --- the bare loop ---------------------------------------------------------------------------------------------
def bare_loop(workload: Workload, args: argparse.Namespace, threads: int | None = None) -> float:
    import torch
    from torch import nn

    from maas.training.architectures import build_network
    from maas.training.session import steps_per_epoch
    from maas.training.spec import ArchitectureSpec

    torch.set_num_threads(threads or int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    rows = train_rows(workload)
    x_np = workload.x[rows]
    x_np = (x_np - x_np.mean(0)) / (x_np.std(0) + 1e-6)  # standardised once, up front
    x = torch.as_tensor(x_np).to(args.device)
    y = torch.as_tensor(workload.y[rows].astype(np.int64)).to(args.device)
    arch = ArchitectureSpec(type="mlp", hidden=HIDDEN, dropout=0.1, batch_norm=True)
    model = build_network(arch, [x.shape[1]], int(workload.y.max()) + 1, None).to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = steps_per_epoch(len(x), args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    _sync(args.device)
    started = time.perf_counter()
    for _epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), device=args.device)
        for i in range(steps):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    _sync(args.device)
    return time.perf_counter() - started


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --- maas through its real path --------------------------------------------------------------------------------
def run_maas(workload: Workload, args: argparse.Namespace) -> MaasTiming:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        server, url = start_server(Path(tmp), args.device)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                register_dataset(http, workload)
                if not args.cold:
                    warm_up(http, workload)
                return train_once(http, workload, args)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


def start_server(data_dir: Path, device: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MAAS_DATA_DIR": str(data_dir), "MAAS_DEVICE": device, "MAAS_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "maas", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=(data_dir / "server.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"maas serve did not become ready:\n{(data_dir / 'server.log').read_text()[-3000:]}")


def register_dataset(http: httpx.Client, workload: Workload) -> None:
    if workload.npz is None:
        response = http.post("/datasets", json={"name": workload.name, "builtin": workload.name})
    else:
        response = http.post("/datasets", files={"file": (f"{workload.name}.npz", workload.npz)},
                             data={"name": workload.name})
    response.raise_for_status()


def warm_up(http: httpx.Client, workload: Workload) -> None:
    """One short job first, so the measured one meets a server in its steady state: a worker's standby child
    (imports done) is waiting, as on any server that has been up a few seconds. ``--cold`` skips this."""
    response = http.post("/train", json={"dataset": workload.name, "model": "warm-up",
                                         "hyperparameters": {"epochs": 1}})
    response.raise_for_status()
    job = follow(http, response.json()["job_id"])
    if job.get("status") != "succeeded":
        raise RuntimeError(f"the warm-up job {job.get('status')}: {job.get('error')}")
    time.sleep(3)  # the next standby child, started when the warm-up was handed over, finishes its imports


def train_once(http: httpx.Client, workload: Workload, args: argparse.Namespace) -> MaasTiming:
    spec = {"dataset": workload.name,
            "architecture": {"type": "mlp", "hidden": HIDDEN, "dropout": 0.1, "batch_norm": True},
            "hyperparameters": {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adamw",
                                "lr": LR, "weight_decay": WEIGHT_DECAY, "schedule": "cosine",
                                "early_stopping": None},
            "device": args.device}
    submitted = time.perf_counter()
    response = http.post("/train", json=spec)
    response.raise_for_status()
    job = follow(http, response.json()["job_id"])
    total = time.perf_counter() - submitted
    if job["status"] != "succeeded":
        raise RuntimeError(f"the maas job {job['status']}: {job['error']}")
    version = http.get(f"/models/{job['model']['name']}/versions/{job['model']['version']}").json()
    created, started, ended = (datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at"))
    return MaasTiming(total=total, server_total=(ended - created).total_seconds(),
                      trainer=sum(h["seconds"] for h in job["history"]), claim=(started - created).total_seconds(),
                      accuracy=version["metrics"].get("accuracy", float("nan")))


def follow(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """Read the job's event stream until it ends; returns the final job."""
    job: dict[str, Any] = {}
    with http.stream("GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(60, read=None)) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "progress":
                job = json.loads(line[6:])
            elif event == "end":
                break
    return job


# --- report ----------------------------------------------------------------------------------------------------
def report(workload: Workload, args: argparse.Namespace, bare_runs: list[float], maas_runs: list[MaasTiming],
           bare_all_cores: float | None) -> None:
    bare = statistics.median(bare_runs)
    total = statistics.median(m.server_total for m in maas_runs)
    client_total = statistics.median(m.total for m in maas_runs)
    trainer = statistics.median(m.trainer for m in maas_runs)
    claim = statistics.median(m.claim for m in maas_runs)
    imports = child_import_seconds()
    print(f"workload: {workload.name} ({len(workload.y)} rows, {len(train_rows(workload))} trained on), "
          f"MLP {HIDDEN} + BN + dropout, AdamW lr {LR:g} cosine, batch {args.batch_size}, {args.epochs} epochs, "
          f"device {args.device}")
    print(f"threads: {os.environ.get('OMP_NUM_THREADS')} (what maas gives its training child here, both sides); "
          f"{len(bare_runs)} run(s) each, medians; maas test accuracy {maas_runs[-1].accuracy:.4f}")
    rows = [("bare PyTorch loop", bare), ("maas trainer (sum of epoch seconds)", trainer),
            ("maas submit -> succeeded (job row timestamps)", total),
            ("maas submit -> succeeded (client, SSE-polled)", client_total)]
    if bare_all_cores is not None:
        rows.append((f"(bare loop on all {_cores()} cores, for reference)", bare_all_cores))
    print(f"\n{'':48}{'seconds':>9}{'x bare':>9}")
    for label, seconds in rows:
        print(f"{label:48}{seconds:9.2f}{seconds / bare:9.3f}")
    state = "first job of a fresh server" if args.cold else "after one warm-up job (the steady state)"
    print(f"\nfixed per-job overhead (total - trainer), {state}: {total - trainer:.2f} s, of which")
    print(f"  queued -> claimed (job row timestamps):       {claim:5.2f} s")
    print(f"  the rest:                                     {total - trainer - claim:5.2f} s  (job file, data load "
          "+ split + upload to the device, a checkpoint per epoch, ONNX export + parity check, registration; on a "
          "cold start also the child's imports)")
    print(f"a cold child's interpreter start + imports, for reference: {imports:.2f} s (torch, sklearn, onnx "
          "export): what the worker's standby child takes off a job's path")
    if len(bare_runs) > 1:
        print("runs (bare / maas trainer / maas total): " + ", ".join(
            f"{b:.1f}/{m.trainer:.1f}/{m.server_total:.1f}" for b, m in zip(bare_runs, maas_runs, strict=True)))
    print(f"per epoch: bare {bare / args.epochs * 1000:.1f} ms, maas trainer {trainer / args.epochs * 1000:.1f} ms "
          "(the trainer's epoch also validates and computes val metrics)")


def child_import_seconds() -> float:
    """What starting a training child costs before it does any work: a fresh interpreter and its imports."""
    code = ("import maas.jobs.runner, maas.datasets.parsers, maas.training.trainer, maas.export.onnx, "
            "maas.training.checkpoint, maas.storage")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - started


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
