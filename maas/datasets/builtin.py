"""The built-in datasets, from the files scikit-learn ships (nothing is downloaded).

Each is materialised as a canonical NPZ (see ``npz.write_npz``), so its bytes and sha256 are the same on every
call and every machine with the same scikit-learn data. Class labels are the dataset's own names ("setosa",
"malignant"), stored as ``classes`` with integer ``y``; digits keeps its digits 0..9 as integer labels.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from maas.datasets.npz import write_npz
from maas.datasets.parsers import parse_dataset
from maas.datasets.schema import ParsedDataset
from maas.errors import DatasetNotFound

BUILTIN_NAMES = ("digits", "iris", "wine", "breast_cancer", "diabetes")
DIGITS_IMAGE_SHAPE = (1, 8, 8)


@cache
def builtin_file(name: str) -> tuple[bytes, str]:
    if name not in BUILTIN_NAMES:
        raise DatasetNotFound(f"Unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN_NAMES)}.")
    return write_npz(_arrays(name)), "npz"


def load_builtin(name: str) -> ParsedDataset:
    """Parsed from the canonical file with no hints, exactly as the registry parses it."""
    return parse_dataset(*builtin_file(name))


def _arrays(name: str) -> dict[str, np.ndarray]:
    from sklearn import datasets  # sklearn is slow to import and only needed on first use

    loader = {"digits": datasets.load_digits, "iris": datasets.load_iris, "wine": datasets.load_wine,
              "breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}[name]
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "digits":
        return {"X": x, "y": np.asarray(bunch.target, dtype=np.int64),
                "feature_names": np.asarray([f"pixel_{i}" for i in range(x.shape[1])], dtype=str),
                "image_shape": np.asarray(DIGITS_IMAGE_SHAPE, dtype=np.int64)}
    arrays = {"X": x, "feature_names": np.asarray(bunch.feature_names, dtype=str)}
    if name == "diabetes":
        return {**arrays, "y": np.asarray(bunch.target, dtype=np.float32)}
    classes = np.asarray(bunch.target_names, dtype=str)
    return {**arrays, "y": np.asarray(bunch.target, dtype=np.int64), "classes": classes}
