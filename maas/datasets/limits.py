"""The sizes every parser refuses, so that a hostile or mistaken file costs a 422 instead of the server's memory."""

from __future__ import annotations

MAX_FEATURES = 100_000
"""Columns of a tabular dataset (besides the target)."""

MAX_SAMPLE_VALUES = 10_000_000
"""Values in one sample of an image dataset (C * H * W)."""

MAX_CLASSES = 1000
"""Distinct labels of a classification target; more is almost always an id column picked by mistake."""

MAX_DECODED_BYTES = 4 * 1024**3
"""Bytes a compressed Parquet or NPZ file may expand to; a few MiB can otherwise decompress to many GiB."""
