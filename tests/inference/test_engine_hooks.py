"""Registry hooks reach the engine from other threads; small batches run on the event loop itself."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from maas.config import Settings
from maas.inference.backends import build_backend
from maas.inference.backends.base import Backend
from maas.inference.engine import BackendFactory, InferenceEngine
from maas.inference.servable import ServableArtifact, ServableVersion
from tests.inference.fakes import FakeResolver, make_servable

pytestmark = pytest.mark.anyio
X = np.zeros([1, 4], dtype=np.float32)


async def test_an_invalidation_from_another_thread_is_applied_on_the_loop(
    tmp_path: Path, affine_artifact: ServableArtifact
) -> None:
    resolver = FakeResolver()
    resolver.add(make_servable({"onnx": affine_artifact}), None)
    engine = InferenceEngine(Settings(data_dir=tmp_path), resolver)
    await engine.start()
    await engine.predict("acme", "affine", None, None, X)
    # As a registry write does: the hook runs on a worker thread while the loop keeps serving.
    worker = threading.Thread(target=engine.invalidate, args=("acme", "affine"))
    worker.start()
    worker.join()
    await asyncio.sleep(0)  # the queued invalidation runs before anything the loop does next
    await engine.predict("acme", "affine", None, None, X)
    assert resolver.calls == 2
    await engine.stop()


@pytest.mark.parametrize(("inline_us", "on_loop"), [(1e6, True), (0.0, False)])
async def test_quick_batches_run_on_the_event_loop(
    tmp_path: Path, affine_artifact: ServableArtifact, inline_us: float, on_loop: bool
) -> None:
    resolver = FakeResolver()
    resolver.add(make_servable({"onnx": affine_artifact}), None)
    threads: list[str] = []
    engine = InferenceEngine(Settings(data_dir=tmp_path, inline_batch_us=inline_us), resolver,
                             backend_factory=_recording(threads))
    await engine.start()
    outputs = (await engine.predict("acme", "affine", None, None, np.full([1, 4], 4, dtype=np.float32))).outputs
    assert outputs["output"].tolist() == [[9.0] * 4]
    assert (threads[-1] == threading.current_thread().name) == on_loop
    await engine.stop()


def _recording(threads: list[str]) -> BackendFactory:
    """The real backends, noting which thread runs each batch."""

    def factory(servable: ServableVersion, artifact: ServableArtifact, settings: Settings) -> Backend:
        backend = build_backend(servable, artifact, settings)
        predict = backend.predict

        def recorded(batch: np.ndarray) -> dict[str, np.ndarray]:
            threads.append(threading.current_thread().name)
            return predict(batch)

        backend.predict = recorded  # type: ignore[method-assign]
        return backend

    return factory
