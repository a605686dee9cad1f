"""NPZ: arrays ``X`` and ``y``, plus optional ``classes``, ``feature_names`` and ``image_shape``; never pickles.

``X`` is [N, F] (tabular), [N, H, W] (one-channel images) or [N, C, H, W]. ``y`` holds the labels themselves, or,
when ``classes`` is present, integer indices into ``classes``. The label array may be named by ``target``.
Each member's header is read before its data, so a file cannot make the parser allocate more than it declares.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib

import numpy as np

from maas.datasets.labels import as_label_array, encode_labels, infer_task
from maas.datasets.limits import MAX_DECODED_BYTES, MAX_FEATURES, MAX_SAMPLE_VALUES
from maas.datasets.schema import DatasetSchema, ParsedDataset
from maas.errors import InvalidDataset

DEFAULT_LABELS = "y"
_OPTIONAL = ("classes", "feature_names", "image_shape")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip entries carry a timestamp; a fixed one keeps the bytes reproducible


def parse_npz(data: bytes, target: str | None, task: str | None) -> ParsedDataset:
    label_key = target or DEFAULT_LABELS
    arrays = read_npz(data, ("X", label_key, *_OPTIONAL))
    if "X" not in arrays or label_key not in arrays:
        raise InvalidDataset(f"The NPZ must hold arrays 'X' and {label_key!r}; it holds {sorted(arrays)}.")
    if task == "regression" and "classes" in arrays:
        raise InvalidDataset("An NPZ with 'classes' is a classification dataset, not a regression one.")
    labels = _labels(arrays[label_key], arrays.get("classes"))
    x = _samples(arrays["X"], len(labels))
    task = infer_task(labels, task)
    y, classes = encode_labels(labels, task)
    schema = _schema(arrays, x, task, classes, label_key)
    return ParsedDataset(schema=schema, X=x.reshape(len(y), *schema.input_shape), texts=None, y=y)


def read_npz(data: bytes, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays that the archive holds; other members are never decompressed."""
    if data.startswith(b"\x93NUMPY"):
        raise InvalidDataset("The file is a single .npy array; send an .npz with 'X' and 'y'.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {i.filename.removesuffix(".npy"): i for i in archive.infolist() if i.filename.endswith(".npy")}
            wanted = [members[name] for name in names if name in members]
            if sum(info.file_size for info in wanted) > MAX_DECODED_BYTES:
                raise InvalidDataset(f"The NPZ expands to more than {MAX_DECODED_BYTES} bytes.")
            return {info.filename.removesuffix(".npy"): _member(archive, info) for info in wanted}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise InvalidDataset("The NPZ file is truncated or not an NPZ archive.") from exc


def write_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The same bytes for the same arrays on every machine: stored (zlib versions differ), fixed time and host."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_TIME)
            info.create_system = 3  # ZipInfo says 0 on Windows and 3 elsewhere
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return out.getvalue()


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise InvalidDataset(f"The array {name!r} uses .npy format version {version}; save it with numpy's "
                                 "default format.")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise InvalidDataset(f"The array {name!r} holds pickled Python objects, which are refused; save plain arrays.")
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise InvalidDataset(f"The array {name!r} is truncated.")
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _labels(values: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]  # a column vector is still one label per row
    if values.ndim != 1:
        raise InvalidDataset(f"The labels must be one-dimensional; they have shape {list(values.shape)}.")
    values = as_label_array(values)
    if classes is None:
        return values
    if classes.ndim != 1 or values.dtype.kind not in "iu":
        raise InvalidDataset("With 'classes', the labels must be integer indices into a one-dimensional 'classes'.")
    if len(values) and (values.min() < 0 or values.max() >= len(classes)):
        raise InvalidDataset(f"The labels must be indices in 0..{len(classes) - 1} into 'classes'.")
    return as_label_array(classes)[values]


def _samples(x: np.ndarray, n: int) -> np.ndarray:
    if x.ndim not in (2, 3, 4) or x.shape[0] != n:
        raise InvalidDataset(f"'X' must be [N, F], [N, H, W] or [N, C, H, W] with N = {n} labels; "
                             f"it has shape {list(x.shape)}.")
    if 0 in x.shape:
        raise InvalidDataset(f"'X' has no values (shape {list(x.shape)}).")
    if (x.ndim == 2 and x.shape[1] > MAX_FEATURES) or math.prod(x.shape[1:]) > MAX_SAMPLE_VALUES:
        raise InvalidDataset(f"'X' has too many values per sample (shape {list(x.shape)}).")
    if x.dtype.kind not in "biuf":
        raise InvalidDataset(f"'X' must be numeric, not {x.dtype}.")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise InvalidDataset("'X' has NaN, infinite or beyond-float32 values.")
    return x


def _schema(arrays: dict[str, np.ndarray], x: np.ndarray, task: str, classes: list | None,
            target: str) -> DatasetSchema:
    n = int(x.shape[0])
    if x.ndim == 2:
        width = int(x.shape[1])
        return DatasetSchema(task=task, modality="tabular", format="npz", n_rows=n, target=target,
                             features=_feature_names(arrays.get("feature_names"), width), input_shape=[width],
                             classes=classes, image_shape=_image_shape(arrays.get("image_shape"), width))
    shape = [1, *x.shape[1:]] if x.ndim == 3 else list(x.shape[1:])
    return DatasetSchema(task=task, modality="image", format="npz", n_rows=n, target=target, features=[],
                         input_shape=[int(v) for v in shape], classes=classes)


def _feature_names(names: np.ndarray | None, width: int) -> list[str]:
    if names is None:
        return [f"f{i}" for i in range(width)]
    if names.ndim != 1 or len(names) != width:
        raise InvalidDataset(f"'feature_names' must name each of the {width} columns of 'X' once.")
    result = [str(v) for v in as_label_array(names).tolist()]
    if len(set(result)) != width:
        raise InvalidDataset("'feature_names' must be unique.")
    return result


def _image_shape(shape: np.ndarray | None, width: int) -> list[int] | None:
    """[C, H, W] of tabular rows that are flattened images, so a CNN can fold them back."""
    if shape is None:
        return None
    if shape.ndim != 1 or len(shape) != 3 or shape.dtype.kind not in "iu" or math.prod(shape.tolist()) != width:
        raise InvalidDataset(f"'image_shape' must be three integers [C, H, W] whose product is {width}.")
    if shape.min() <= 0:
        raise InvalidDataset("'image_shape' must be positive.")
    return [int(v) for v in shape]
