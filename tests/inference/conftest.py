"""Fixtures of the inference tests: tiny fixed-weight ONNX models on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.inference.servable import ServableArtifact
from tests.factories import affine_onnx, classifier_onnx
from tests.inference.fakes import write_artifact


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def affine_artifact(tmp_path: Path) -> ServableArtifact:
    """y = 2x + 1 on [-1, 4]: 4 -> 9."""
    return write_artifact(tmp_path / "affine.onnx", affine_onnx())


@pytest.fixture
def classifier_artifact(tmp_path: Path) -> ServableArtifact:
    """softmax over feature groups: class j wins when features i with i % 3 == j are largest."""
    return write_artifact(tmp_path / "classifier.onnx", classifier_onnx(n_in=4, n_classes=3))
