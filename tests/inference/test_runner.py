from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from maas.errors import InferenceFailed
from maas.inference.backends import OnnxRuntimeBackend
from maas.inference.footprint import FootprintMeter, resident_bytes
from maas.inference.runner import ModelRunner

pytestmark = pytest.mark.anyio


def fixed_batch_identity(path: Path, batch: int) -> Path:
    """An imported model exported with a fixed batch of ``batch`` rows."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


async def test_a_fixed_batch_model_is_never_given_more_rows(tmp_path: Path) -> None:
    runner = ModelRunner(OnnxRuntimeBackend(fixed_batch_identity(tmp_path / "m.onnx", 1)), input_shape=[2],
                         max_batch_size=64)
    await runner.open()
    out = await runner.submit(np.ones([1, 2], np.float32), time.monotonic() + 5)
    assert out["y"].tolist() == [[1.0, 1.0]]
    assert runner._batcher is not None and runner._batcher._max_batch_size == 1
    await runner.close()


async def test_a_model_that_cannot_load_is_an_inference_failure(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(InferenceFailed, match="could not be loaded"):
        await ModelRunner(OnnxRuntimeBackend(path), input_shape=[2], max_batch_size=4).open()


def test_the_footprint_meter_reads_resident_memory_and_respects_the_lower_bound() -> None:
    assert (resident_bytes() or 0) > 0
    meter = FootprintMeter()
    ballast = np.ones(32 * 2**20, dtype=np.uint8)  # touched pages: RSS grows by about 32 MiB
    assert meter.measure(lower_bound=0) >= 16 * 2**20
    assert FootprintMeter().measure(lower_bound=10**12) == 10**12
    del ballast
