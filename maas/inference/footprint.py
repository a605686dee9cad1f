"""Measure what a loaded model costs in memory, instead of guessing it from file sizes.

The cache budget is only honest if footprints are measured: an ONNX session, its arena after a warm-up batch
and a torch module all cost more than their file. We read the process's resident set before and after
load + warm-up. Loads are serialised by the engine so the delta is (mostly) one model's; the backend's own
lower bound (bytes of weights actually held) guards against a delta shrunk by memory freed meanwhile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from functools import cache

_STATM = "/proc/self/statm"


def resident_bytes() -> int | None:
    """Current resident set size of this process, or None where the platform does not expose it."""
    try:
        with open(_STATM, "rb") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class FootprintMeter:
    """RSS delta between construction and ``measure()``, never below the backend's own lower bound."""

    def __init__(self) -> None:
        self._before = resident_bytes()

    def measure(self, lower_bound: int) -> int:
        after = resident_bytes()
        if self._before is None or after is None:
            return lower_bound
        return max(after - self._before, lower_bound)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS after an unload (glibc keeps them otherwise, and RSS lies)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl and macOS have no malloc_trim
        return None
