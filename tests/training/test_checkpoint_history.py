"""A resumed job reads the history of the epochs its checkpoint holds, without loading the weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from maas.datasets.schema import ParsedDataset
from maas.training.checkpoint import checkpoint_history
from maas.training.spec import TrainSpec
from maas.training.trainer import train


def test_checkpoint_history_is_the_trainers(iris: ParsedDataset, make_spec: Callable[..., TrainSpec],
                                            tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.pt"
    result = train(iris, make_spec(epochs=2), checkpoint_path=checkpoint)

    assert checkpoint_history(checkpoint) == result.history


def test_no_checkpoint_or_not_a_checkpoint_is_an_empty_history(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")

    assert checkpoint_history(tmp_path / "missing.pt") == []
    assert checkpoint_history(tmp_path / "junk.pt") == []
