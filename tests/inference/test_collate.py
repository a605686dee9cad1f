from __future__ import annotations

import numpy as np
import pytest

from maas.errors import InferenceFailed
from maas.inference import collate


@pytest.mark.parametrize(
    ("rows", "sample_shape"),
    [([1], [4]), ([1, 1, 1], [4]), ([3, 1, 5], [4]), ([2, 2], [1, 8, 8]), ([64], [64])],
)
def test_stack_then_split_gives_each_request_its_own_rows(rows: list[int], sample_shape: list[int]) -> None:
    parts = [np.full([n, *sample_shape], i, dtype=np.float32) for i, n in enumerate(rows)]
    batch, offsets = collate.stack(parts)
    assert batch.shape == (sum(rows), *sample_shape)
    assert offsets == [0, *np.cumsum(rows).tolist()]
    outputs = {"y": batch * 2 + 1, "n": batch.reshape(batch.shape[0], -1).sum(axis=1)}
    for i, (part, out) in enumerate(zip(parts, collate.split(outputs, offsets), strict=True)):
        np.testing.assert_array_equal(out["y"], part * 2 + 1)
        assert out["n"].shape == (rows[i],)


def test_a_lone_request_is_passed_through_without_a_copy() -> None:
    part = np.ones([2, 4], dtype=np.float32)
    batch, offsets = collate.stack([part])
    assert batch is part
    outputs = {"y": batch}
    assert collate.split(outputs, offsets)[0] is outputs


@pytest.mark.parametrize("bad", [np.zeros([3, 2]), np.float32(1.0)])
def test_outputs_with_the_wrong_number_of_rows_fail_the_batch(bad: np.ndarray) -> None:
    with pytest.raises(InferenceFailed, match="for output 'y'"):
        collate.split({"y": np.asarray(bad)}, [0, 2, 4])


def test_stacking_nothing_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        collate.stack([])
