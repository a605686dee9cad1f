"""Pure functions that turn many requests into one batch and one batch's outputs back into per-request parts.

Every request of a model has the same per-sample shape (the codecs checked it), so nothing is padded: a batch
is the concatenation of the requests' rows, and ``offsets`` remembers where each request's rows begin.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from maas.errors import InferenceFailed


def stack(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Concatenate requests ``[n_i, *shape]`` into ``[sum n_i, *shape]``; offsets has ``len(parts) + 1`` items."""
    if not parts:
        raise ValueError("Cannot stack an empty list of requests.")
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part.shape[0])
    # A lone request is the common case at low load: hand its array through without a copy.
    batch = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return batch, offsets


def split(outputs: dict[str, np.ndarray], offsets: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Cut every named output back into the requests' row ranges (views, no copies)."""
    total = offsets[-1]
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            rows = "a scalar" if value.ndim == 0 else f"{value.shape[0]} rows"
            raise InferenceFailed(f"The model returned {rows} for output {name!r} but was given {total} rows.")
    if len(offsets) == 2:
        return [outputs]
    return [{name: value[start:end] for name, value in outputs.items()} for start, end in pairwise(offsets)]
