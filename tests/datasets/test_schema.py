"""The schema is stored as JSON in the registry and read back unchanged."""

from __future__ import annotations

import orjson
import pytest

from maas.datasets.schema import DatasetSchema

SCHEMA = DatasetSchema(task="classification", modality="tabular", format="npz", n_rows=10, target="y",
                       features=["a", "b"], input_shape=[2], classes=["x", 1, 2.5, True], image_shape=[1, 1, 2])


def test_round_trip_through_json() -> None:
    assert DatasetSchema.from_dict(orjson.loads(orjson.dumps(SCHEMA.to_dict()))) == SCHEMA


def test_optional_fields_may_be_absent_and_unknown_ones_are_ignored() -> None:
    d = {**SCHEMA.to_dict(), "added_later": 1}
    del d["image_shape"]
    assert DatasetSchema.from_dict(d).image_shape is None


def test_required_fields_must_be_present() -> None:
    d = SCHEMA.to_dict()
    del d["task"]
    with pytest.raises(KeyError):
        DatasetSchema.from_dict(d)
