from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from maas.errors import InvalidInput
from maas.inference.codecs import decode_rows
from maas.inference.codecs import rows as rows_codec

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.mark.parametrize(
    ("inputs", "shape", "expected_shape"),
    [
        ([[1, 2, 3, 4], [5, 6, 7, 8]], [4], (2, 4)),
        ([1, 2, 3, 4], [4], (1, 4)),  # a single row
        ([[0.5] * 64] * 3, [64], (3, 64)),
        ([1.5, 2.5, 3.5], [1], (3, 1)),  # one feature: a flat list is a column
        ([[1.5], [2.5]], [1], (2, 1)),
        ([[["5.1", 2, True, 0]]], [1, 4], (1, 1, 4)),  # numeric strings and booleans read as numbers
        (np.zeros([2, 3, 5, 5]).tolist(), [3, 5, 5], (2, 3, 5, 5)),  # images [N, C, H, W]
        (np.zeros([2, 8, 8]).tolist(), [1, 8, 8], (2, 1, 8, 8)),  # one channel may be left out
        (np.zeros([8, 8]).tolist(), [1, 8, 8], (1, 1, 8, 8)),  # a single one-channel image
        (np.zeros([3, 8, 8]).tolist(), [3, 8, 8], (1, 3, 8, 8)),  # a single image
        ([[1, 2, 3], [4, 5, 6]], [-1], (2, 3)),  # a dynamic per-sample dimension
    ],
)
def test_number_layouts_decode_to_a_float32_batch(inputs: Any, shape: list[int], expected_shape: tuple) -> None:
    batch = decode_rows(orjson.loads(orjson.dumps(inputs)), shape)
    assert batch.dtype == np.float32
    assert batch.shape == expected_shape


def test_values_survive_exactly() -> None:
    batch = decode_rows([[4, 0.5, -1, 1e6]], [4])
    np.testing.assert_array_equal(batch, np.array([[4, 0.5, -1, 1e6]], dtype=np.float32))


@pytest.mark.parametrize(
    "rows",
    [
        [{"petal width (cm)": 0.2, "sepal length (cm)": 5.1, "petal length (cm)": 1.4, "sepal width (cm)": 3.5}],
        {"sepal width (cm)": 3.5, "petal width (cm)": 0.2, "sepal length (cm)": 5.1, "petal length (cm)": 1.4},
    ],
)
def test_rows_keyed_by_feature_name_are_reordered_to_the_models_order(rows: Any) -> None:
    batch = decode_rows(rows, [4], IRIS)
    np.testing.assert_array_equal(batch, np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))


def test_a_single_named_feature_works() -> None:
    assert decode_rows([{"x": 1}, {"x": 2}], [1], ["x"]).shape == (2, 1)


def named(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(IRIS, [5.1, 3.5, 1.4, 0.2], strict=True))
    for key, value in changes.items():
        name = next((n for n in IRIS if n.startswith(key.replace("_", " "))), key)
        if value is ...:
            row.pop(name, None)
        else:
            row[name] = value
    return row


@pytest.mark.parametrize(
    ("inputs", "shape", "names", "message"),
    [
        ([[0.0] * 64] * 3 + [[0.0] * 63], [64], None, "inputs[3] has 63 values; the model takes 64"),
        ([[0.0] * 63] * 2, [64], None, "inputs[0] has 63 values; the model takes 64"),
        ([1, 2, 3], [4], None, "inputs has 3 values; the model takes 4 per row"),
        ([[1, 2, "abc", 4]], [4], None, 'inputs[0][2] is "abc", not a number'),
        ([[1, 2, None, 4]], [4], None, "inputs[0][2] is null; the model takes finite numbers"),
        ([[1, 2, [3], 4]], [4], None, "inputs[0][2] is a list, not a number"),
        ([[1, 2, 3, {"a": 1}]], [4], None, "inputs[0][3] is an object, not a number"),
        ([[1, 2, 3, float("nan")]], [4], None, "inputs[0][3] is nan; the model takes finite numbers"),
        ([[1, 2, 3, 1e39]], [4], None, "inputs[0][3] is 1e+39, too large for a 32-bit float"),
        ([[1, 2, 3, "inf"]], [4], None, "inputs[0][3] is inf"),
        ([], [4], None, "inputs is empty"),
        ("1,2,3,4", [4], None, 'inputs must be a list of rows (lists of numbers), not "1,2,3,4"'),
        (np.zeros([2, 7, 7]).tolist(), [1, 8, 8], None, "inputs has shape [2, 7, 7]; the model takes [N, 1, 8, 8]"),
        ([np.zeros([8, 8]).tolist(), np.zeros([8, 7]).tolist()], [1, 8, 8], None, "inputs[1][0] has 7 values"),
        ([named()], [4], None, "This model has no feature names"),
        ([named(), named(petal_width=...)], [4], IRIS, 'inputs[1] misses "petal width (cm)"; the model takes'),
        ([named(colour="red")], [4], IRIS, 'inputs[0] has unknown "colour"'),
        ([named(), [1, 2, 3, 4]], [4], IRIS, "inputs[1] is a list; send every row as an object"),
        ([named(sepal_length="long")], [4], IRIS, 'inputs[0]["sepal length (cm)"] is "long", not a number'),
        ([named(sepal_length=None)], [4], IRIS, 'inputs[0]["sepal length (cm)"] is null; the model takes finite'),
    ],
)
def test_bad_inputs_are_refused_with_a_message_that_names_the_value(
    inputs: Any, shape: list[int], names: list[str] | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_rows(inputs, shape, names)
    assert message in caught.value.message


def test_every_problem_is_listed_in_the_details() -> None:
    inputs = [[0.0] * 4, [0.0] * 3, [0.0] * 5, [0.0, "x", 0.0, 0.0]]
    with pytest.raises(InvalidInput) as caught:
        decode_rows(inputs, [4])
    assert caught.value.details == [
        "inputs[1] has 3 values; the model takes 4.",
        "inputs[2] has 5 values; the model takes 4.",
        'inputs[3][1] is "x", not a number.',
    ]


def test_large_finite_values_whose_float32_sum_overflows_are_accepted() -> None:
    # The hot path's finiteness test sums in float32: two values near its maximum overflow that sum, and the
    # elementwise check must then let them through.
    x = decode_rows([[3e38, 3e38, 1.0, 2.0]], [4])
    assert x.dtype == np.float32 and np.isfinite(x).all()


@pytest.mark.parametrize(
    ("inputs", "packed"),
    [
        ([[1.5, -2.25, 3.0, 4.0]], True),  # one row
        ([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], True),  # ints, several rows
        ([[True, False, 0, 2**70]], True),  # bools and a large int, as numpy converts them
        ([[1e-50, -1e-50, 3.4028234e38, -3.4028234e38]], True),  # underflow to zero, the largest float32
        ([["5.1", 1, 2, 3]], False),  # a numeric string: numpy's path, the same result
    ],
)
def test_rows_decode_exactly_as_numpy_converts_them(inputs: list[list[Any]], packed: bool) -> None:
    assert (rows_codec._pack_rows(inputs, 4) is not None) is packed
    x = decode_rows(inputs, [4])
    expected = np.asarray(inputs, dtype=np.float32)
    assert x.dtype == np.float32 and x.shape == expected.shape
    assert x.tobytes() == expected.tobytes()
    assert x.flags.writeable  # torch.from_numpy warns about read-only arrays


def test_ragged_rows_take_the_general_path_that_names_the_short_row() -> None:
    ragged = [[1, 2, 3, 4], [5, 6, 7]]
    assert rows_codec._pack_rows(ragged, 4) is None
    with pytest.raises(InvalidInput, match=r"inputs\[1\] has 3 values"):
        decode_rows(ragged, [4])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e39, None, [1.0]])
def test_packed_rows_leave_what_they_cannot_take_to_the_general_path(value: Any) -> None:
    assert rows_codec._pack_rows([[1.0, 2.0, value]], 3) is None
    with pytest.raises(InvalidInput, match=r"inputs\[0\]\[2\]"):
        decode_rows([[1.0, 2.0, value]], [3])


def test_packed_rows_round_like_numpy() -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((8, 64)) * 10.0 ** rng.integers(-40, 38, (8, 64))
    as_json = orjson.loads(orjson.dumps(values.tolist()))
    assert decode_rows(as_json, [64]).tobytes() == values.astype(np.float32).tobytes()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("rows", [1, 40])  # 40 rows of 64 take numpy's finite test, one row Python's sum
def test_a_non_finite_value_is_named_in_few_rows_and_in_many(value: float, rows: int) -> None:
    inputs = [[float(i)] * 64 for i in range(rows)]
    inputs[-1][5] = value
    assert rows_codec._pack_rows(inputs, 64) is None
    with pytest.raises(InvalidInput, match=rf"inputs\[{rows - 1}\]\[5\] is {value}"):
        decode_rows(inputs, [64])
    inputs[-1][5] = 1.0
    assert decode_rows(inputs, [64]).tobytes() == np.asarray(inputs, dtype=np.float32).tobytes()
