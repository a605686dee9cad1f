"""NPZ: shapes to modalities, the optional arrays, and archives that must be refused."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from maas.datasets.npz import read_npz, write_npz
from maas.datasets.parsers import parse_dataset
from maas.errors import InvalidDataset
from tests.datasets.files import npz_bytes

RNG = np.random.default_rng(0)
BINARY = np.arange(20) % 2


@pytest.mark.parametrize(("shape", "modality", "input_shape", "features"), [
    ((20, 5), "tabular", [5], ["f0", "f1", "f2", "f3", "f4"]),
    ((20, 6, 7), "image", [1, 6, 7], []),
    ((20, 3, 4, 4), "image", [3, 4, 4], []),
])
def test_shapes(shape: tuple[int, ...], modality: str, input_shape: list[int], features: list[str]) -> None:
    x = RNG.normal(size=shape)
    parsed = parse_dataset(npz_bytes(X=x, y=BINARY), "npz")
    s = parsed.schema
    assert (s.modality, s.input_shape, s.features, s.target, s.format, s.n_rows) == (
        modality, input_shape, features, "y", "npz", 20)
    assert parsed.X is not None and parsed.X.dtype == np.float32 and parsed.X.shape == (20, *input_shape)
    assert np.allclose(parsed.X.reshape(shape), x, atol=1e-6)


def test_classes_array_names_integer_labels() -> None:
    classes = np.array(["cat", "dog", "ant"])
    parsed = parse_dataset(npz_bytes(X=np.ones((4, 2)), y=np.array([0, 1, 2, 1]), classes=classes), "npz")
    assert parsed.schema.classes == ["ant", "cat", "dog"]
    assert [parsed.schema.classes[i] for i in parsed.y] == ["cat", "dog", "ant", "dog"]


def test_feature_names_and_image_shape() -> None:
    data = npz_bytes(X=np.ones((4, 4)), y=np.array([0, 1, 0, 1]), feature_names=np.array(["a", "b", "c", "d"]),
                     image_shape=np.array([1, 2, 2]))
    s = parse_dataset(data, "npz").schema
    assert s.features == ["a", "b", "c", "d"] and s.image_shape == [1, 2, 2] and s.modality == "tabular"


def test_labels_by_another_name_and_as_a_column_vector() -> None:
    parsed = parse_dataset(npz_bytes(X=np.ones((4, 2)), label=np.array([[1.5], [2.25], [3.0], [0.1]])), "npz",
                           target="label", task="regression")
    assert parsed.schema.target == "label" and parsed.y.tolist() == pytest.approx([1.5, 2.25, 3.0, 0.1])


def test_byte_string_labels_are_decoded() -> None:
    parsed = parse_dataset(npz_bytes(X=np.ones((4, 1)), y=np.array([b"no", b"yes", b"no", b"yes"])), "npz")
    assert parsed.schema.classes == ["no", "yes"]


def test_write_npz_is_reproducible_and_readable() -> None:
    arrays = {"X": np.eye(3, dtype=np.float32), "names": np.array(["a", "b", "c"])}
    assert write_npz(arrays) == write_npz(dict(arrays))
    loaded = np.load(io.BytesIO(write_npz(arrays)), allow_pickle=False)
    assert np.array_equal(loaded["X"], arrays["X"]) and loaded["names"].tolist() == ["a", "b", "c"]


def test_members_that_are_not_asked_for_are_not_read() -> None:
    assert set(read_npz(npz_bytes(X=np.ones(2), extra=np.ones(3)), ("X",))) == {"X"}


def _zip(**members: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


BAD_NPZ = [
    ("no labels", npz_bytes(X=np.ones((3, 2))), None, "'y'"),
    ("length mismatch", npz_bytes(X=np.ones((3, 2)), y=np.ones(4)), None, "n = 4"),
    ("pickled X", _zip(**{"X.npy": _npy(np.array([{"a": 1}, {}], dtype=object)), "y.npy": _npy(np.arange(2))}), None,
     "pickled"),
    ("truncated", npz_bytes(X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]))[:60], None, "truncated"),
    ("zip of text", _zip(**{"readme.txt": b"hello"}), None, "'x'"),
    ("single npy", _npy(np.ones(3)), None, "single .npy"),
    ("zero rows", npz_bytes(X=np.ones((0, 2)), y=np.ones(0)), None, "no values"),
    ("zero width", npz_bytes(X=np.ones((2, 0)), y=np.arange(2)), None, "no values"),
    ("five dimensions", npz_bytes(X=np.ones((2, 1, 1, 1, 1)), y=np.arange(2)), None, "[n, f]"),
    ("too many features", npz_bytes(X=np.zeros((1, 100_001), dtype=np.uint8), y=np.ones(1)), None, "too many"),
    ("string X", npz_bytes(X=np.array([["a"], ["b"]]), y=np.arange(2)), None, "numeric"),
    ("complex X", npz_bytes(X=np.ones((2, 1), dtype=complex), y=np.arange(2)), None, "numeric"),
    ("nan X", npz_bytes(X=np.array([[np.nan], [1.0]]), y=np.arange(2)), None, "nan"),
    ("inf X", npz_bytes(X=np.array([[np.inf], [1.0]]), y=np.arange(2)), None, "infinite"),
    ("2-d labels", npz_bytes(X=np.ones((2, 1)), y=np.ones((2, 2))), None, "one-dimensional"),
    ("date labels", npz_bytes(X=np.ones((2, 1)), y=np.array(["2020-01-01", "2021-01-01"], "M8[D]")), None, "labels"),
    ("nan labels", npz_bytes(X=np.ones((3, 1)), y=np.array([0.0, np.nan, 1.0])), None, "missing or infinite"),
    ("labels outside classes", npz_bytes(X=np.ones((2, 1)), y=np.array([0, 5]), classes=np.array(["a", "b"])),
     None, "indices"),
    ("float labels with classes", npz_bytes(X=np.ones((2, 1)), y=np.array([0.5, 1]), classes=np.array(["a", "b"])),
     None, "integer"),
    ("wrong feature names", npz_bytes(X=np.ones((2, 2)), y=np.arange(2), feature_names=np.array(["a"])), None,
     "feature_names"),
    ("duplicate feature names", npz_bytes(X=np.ones((2, 2)), y=np.arange(2), feature_names=np.array(["a", "a"])),
     None, "unique"),
    ("wrong image shape", npz_bytes(X=np.ones((2, 4)), y=np.arange(2), image_shape=np.array([1, 3, 3])), None,
     "image_shape"),
    ("unknown label array", npz_bytes(X=np.ones((2, 1)), y=np.arange(2)), "label", "'label'"),
]


@pytest.mark.parametrize(("case", "data", "target", "needle"), BAD_NPZ, ids=[c[0] for c in BAD_NPZ])
def test_bad_npz(case: str, data: bytes, target: str | None, needle: str) -> None:
    with pytest.raises(InvalidDataset) as caught:
        parse_dataset(data, "npz", target=target)
    assert needle in caught.value.message.lower()


def test_header_that_promises_more_than_the_file_holds() -> None:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    data = _zip(**{"X.npy": out.getvalue() + bytes(32), "y.npy": _npy(np.arange(2))})
    with pytest.raises(InvalidDataset, match="truncated"):
        parse_dataset(data, "npz")


def test_regression_with_classes_is_refused() -> None:
    data = npz_bytes(X=np.ones((2, 1)), y=np.arange(2), classes=np.array(["a", "b"]))
    with pytest.raises(InvalidDataset, match="classification"):
        parse_dataset(data, "npz", task="regression")
