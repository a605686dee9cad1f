"""Turn a requested device (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into one this machine really has."""

from __future__ import annotations

import torch

from maas.errors import InvalidSpec


def resolve_device(requested: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``; an unavailable GPU is a spec error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if not requested.startswith("cuda"):
        raise InvalidSpec(f"Unknown device {requested!r}; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise InvalidSpec(f"Device {requested!r} was requested but this machine has no usable CUDA GPU.")
    index = requested.partition(":")[2]
    if index and (not (index.isascii() and index.isdigit()) or int(index) >= torch.cuda.device_count()):
        raise InvalidSpec(f"Device {requested!r} does not exist; this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s).")
    return requested
