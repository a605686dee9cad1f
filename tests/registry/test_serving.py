"""The registry's side of the engine contract: default variant choice and artifact files in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from maas.registry.entities import Artifact
from maas.registry.serving import default_variant


def artifact(kind: str, **metrics: Any) -> Artifact:
    return Artifact(id=kind, kind=kind, sha256="0" * 64, size_bytes=1, metrics=metrics, created_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("artifacts", "expected"),
    [
        ([artifact("torch"), artifact("onnx", accepted=True), artifact("onnx-int8", accepted=True)], "onnx-int8"),
        ([artifact("onnx", accepted=True), artifact("onnx-int8", accepted=False)], "onnx"),
        ([artifact("onnx-int8", accepted=True, latency_ms=0.4),
          artifact("onnx-int8-static", accepted=True, latency_ms=0.2)], "onnx-int8-static"),
        ([artifact("onnx-int8")], "onnx-int8"),  # never checked: only chosen when nothing else exists
        ([artifact("torch"), artifact("onnx", accepted=False)], "torch"),
        ([artifact("torch"), artifact("onnx")], "onnx"),  # an import has no parity check: it is the model itself
        ([artifact("onnx-fp16", accepted=True), artifact("torch")], "torch"),  # fp16 only pays off on a GPU
    ],
)
def test_the_default_variant_is_the_fastest_accepted_kind(artifacts: list[Artifact], expected: str) -> None:
    assert default_variant(artifacts) == expected
