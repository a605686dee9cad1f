"""What maas knows about a dataset once it is parsed: the JSON-ready schema and the arrays behind it."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DatasetSchema:
    task: str  # classification | regression
    modality: str  # tabular | image | text
    format: str  # csv | parquet | npz | jsonl
    n_rows: int
    target: str  # the target column (csv, parquet), label array (npz, default "y") or field (jsonl, default "label")
    features: list[str]  # tabular: columns in order; image: []; text: ["text"]
    input_shape: list[int]  # per sample: tabular [F]; image [C, H, W]; text []
    classes: list[str | int | float | bool] | None  # classification: sorted distinct labels; regression: None
    image_shape: list[int] | None = None  # tabular data that is really an image (digits: [1, 8, 8])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSchema:
        """Required keys must be there; unknown keys are ignored so that older code reads newer rows."""
        values = {f.name: d[f.name] if f.default is MISSING else d.get(f.name, f.default) for f in fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class ParsedDataset:
    schema: DatasetSchema
    X: np.ndarray | None  # float32 [N, *input_shape]; None for text
    texts: list[str] | None  # text modality only
    y: np.ndarray  # classification: int64 indices into schema.classes; regression: float32 [N]
