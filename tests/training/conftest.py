"""Fixtures of the training tests: the real built-in datasets (tiny) and a spec factory with a small budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from maas.datasets.builtin import load_builtin
from maas.datasets.schema import ParsedDataset
from maas.training.spec import TrainSpec


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """These models are tiny: a second intra-op thread only adds synchronisation, and on a busy 2-core machine
    it made digits training 4x slower (results are identical either way)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def iris() -> ParsedDataset:
    return load_builtin("iris")


@pytest.fixture(scope="session")
def diabetes() -> ParsedDataset:
    return load_builtin("diabetes")


@pytest.fixture(scope="session")
def digits() -> ParsedDataset:
    return load_builtin("digits")


@pytest.fixture
def make_spec() -> Callable[..., TrainSpec]:
    """``make_spec(architecture={...}, epochs=3, ...)``: keyword arguments other than the top-level sections
    are hyperparameters; the default budget is 3 epochs so unit tests stay fast."""

    def factory(dataset: str = "iris", architecture: dict[str, Any] | None = None, **hyperparameters: Any
                ) -> TrainSpec:
        return TrainSpec.model_validate({"dataset": dataset, "architecture": architecture or {},
                                         "hyperparameters": {"epochs": 3, **hyperparameters}})

    return factory

