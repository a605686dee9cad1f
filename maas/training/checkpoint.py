"""Per-epoch training checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and primitive containers (numpy's RNG state is converted), so loading it can
never run pickled code. It carries the spec it was made for; resuming with another spec is refused rather than
silently mixing two runs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from maas.errors import MaasError

FORMAT = "maas.checkpoint/v1"


class CheckpointMismatch(MaasError):
    code = "checkpoint_mismatch"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves either the old checkpoint or the new one."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` for the run identified by ``fingerprint``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for unreadable or non-tensor files
        raise CheckpointMismatch(f"{path.name} could not be read as a training checkpoint.") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path.name} is not a maas training checkpoint.")
    if state.get("fingerprint") != fingerprint:
        raise CheckpointMismatch(f"{path.name} was written for a different training spec; refusing to resume.")
    return state


def capture_rng(batches: torch.Generator, device: str) -> dict[str, Any]:
    """Every random stream the training loop draws from, as tensors and primitives."""
    legacy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    name, keys, pos, has_gauss, cached = legacy_state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.startswith("cuda") else None,
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "batches": batches.get_state(),
    }


def restore_rng(state: dict[str, Any], batches: torch.Generator, device: str) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached"]))
    batches.set_state(state["batches"])


def checkpoint_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch history stored in a checkpoint, or ``[]`` when there is none to read.

    Memory-mapped, so peeking at the history of a large model's checkpoint does not read its weights.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
        return []  # unreadable: the trainer's own load_checkpoint reports it properly
    history = state.get("history") if isinstance(state, dict) and state.get("format") == FORMAT else None
    return list(history) if isinstance(history, list) else []
