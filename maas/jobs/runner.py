"""Child-process entry point: ``python -m maas.jobs.runner JOB_FILE`` (or ``--standby``, see ``launcher``).

Runs one training job outside the server's interpreter: a crash, OOM or hang here cannot take the API down,
the job is cancelled by killing this process group, and GPU memory is freed when it exits. It reads the job
file, trains (resuming from the checkpoint when one exists), writes the weights and the ONNX export to the
artifact store, and reports progress and the result as events on stdout. It never opens the database.
In standby it does its imports first and then waits for the job file's path on stdin. Either way it writes its
pid to ``runner.pid`` next to the job file, so operators (and tests) can find the process of a job.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

import orjson

from maas import __version__
from maas.errors import MaasError
from maas.jobs.protocol import EXIT_CANCELLED, encode_event


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.buffer.write(encode_event(kind, **fields))
    sys.stdout.buffer.flush()


def watch_parent() -> None:
    """Exit when the worker dies: it holds our stdin, so EOF there means nobody supervises us any more."""

    def wait_for_eof() -> None:
        while sys.stdin.buffer.read(1):
            pass
        os._exit(3)

    threading.Thread(target=wait_for_eof, daemon=True, name="parent-watch").start()


# What a job imports, in the order it needs them: a standby child pays for all of it before a job arrives.
PRELOAD = ("torch", "maas.datasets.parsers", "maas.storage", "maas.training.checkpoint", "maas.training.spec",
           "maas.training.trainer", "maas.training.weights", "maas.export.onnx", "torch.onnx", "onnxruntime")


def standby() -> Path | None:
    """Import what a job needs, then wait for the worker to name the job file; None on EOF (no job: exit)."""
    for module in PRELOAD:
        importlib.import_module(module)
    line = sys.stdin.buffer.readline().strip()
    return Path(line.decode()) if line else None


def main(job_file: Path) -> int:
    (job_file.parent / "runner.pid").write_text(f"{os.getpid()}\n")
    job = orjson.loads(job_file.read_bytes())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watch_parent()
    try:
        return run_training(job, stop)
    except MaasError as exc:
        emit("error", message=exc.message, code=exc.code, retryable=False)
        return 1
    except Exception as exc:
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}", code="internal_error", retryable=True)
        return 1


def run_training(job: dict[str, Any], stop: threading.Event) -> int:
    from maas.datasets.parsers import parse_dataset
    from maas.storage import ArtifactStore
    from maas.training.checkpoint import checkpoint_history
    from maas.training.spec import TrainSpec, resolve_spec
    from maas.training.trainer import EpochReport, TrainingCancelled, train

    store = ArtifactStore(Path(job["artifacts_dir"]))
    ds = job["dataset"]
    data = parse_dataset(store.read_bytes(ds["sha256"]), ds["format"], target=ds["target"], task=ds["task"])
    spec = TrainSpec.model_validate(job["spec"])
    checkpoint = Path(job["checkpoint"])
    # The checkpoint's history, so the worker can fill in epochs a killed attempt finished but never reported.
    history = checkpoint_history(checkpoint) if checkpoint.exists() else []
    emit("started", resumed=bool(history), history=history, pid=os.getpid())

    def on_epoch(report: EpochReport) -> None:
        emit("epoch", epoch=report.epoch, epochs=report.epochs, train_loss=report.train_loss,
             val_loss=report.val_loss, val_metrics=report.val_metrics, seconds=report.seconds,
             checkpoint=str(checkpoint))

    try:
        result = train(data, spec, checkpoint_path=checkpoint, device=job["device"], on_epoch=on_epoch,
                       should_stop=stop.is_set)
    except TrainingCancelled:
        emit("stopped")
        return EXIT_CANCELLED
    resolved = resolve_spec(spec, data.schema)
    artifacts = store_artifacts(store, result, data.schema, resolved)
    emit("result", metrics=result.metrics, history=result.history, architecture=result.architecture,
         artifacts=artifacts, hyperparameters=resolved.model_dump(mode="json", include={"architecture",
                                                                                      "hyperparameters"}),
         lineage={"maas_version": __version__, "seed": resolved.hyperparameters.seed, "device": result.device,
                  "epochs_run": result.epochs_run, "stopped_early": result.stopped_early})
    return 0


def store_artifacts(store: Any, result: Any, schema: Any, spec: Any) -> list[dict[str, Any]]:
    """safetensors weights always; the fp32 ONNX export (with its parity check) unless the spec turned it off."""
    import numpy as np

    from maas.training.weights import save_weights

    weights = store.put_bytes(save_weights(result.state_dict))
    out = [{"kind": "torch", "sha256": weights.sha256, "size_bytes": weights.size_bytes,
            "metrics": {"format": "safetensors"}}]
    if not spec.export.onnx:
        return out
    from maas.export.onnx import check_parity, export_onnx

    output_name = "probabilities" if schema.task == "classification" else "prediction"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(result.serving_module, list(schema.input_shape), path, output_name=output_name)
        sample = np.random.default_rng(0).normal(size=(16, *schema.input_shape)).astype(np.float32)
        diff = check_parity(result.serving_module, path, sample)
        with path.open("rb") as handle:
            blob = store.put_stream(handle)
    out.append({"kind": "onnx", "sha256": blob.sha256, "size_bytes": blob.size_bytes,
                "metrics": {"max_abs_diff": diff, "accepted": diff < 1e-3, "output": output_name}})
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m maas.jobs.runner JOB_FILE | --standby", file=sys.stderr)
        sys.exit(2)
    job_file = standby() if sys.argv[1] == "--standby" else Path(sys.argv[1])
    if job_file is None:
        os._exit(0)
    code = main(job_file)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: the parent-watch thread is blocked reading stdin, and tearing down a
    # buffered reader under a daemon thread aborts the process (SIGABRT) instead of exiting with our code.
    os._exit(code)
