from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from maas.config import Settings
from maas.errors import (
    ArtifactCorrupt,
    ArtifactNotFound,
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    Unavailable,
)
from maas.inference.backends import build_backend
from maas.inference.backends.base import Backend, TensorSpec
from maas.inference.batcher import BatchObserver
from maas.inference.codecs import decode_rows, encode_v2_response, parse_v2_request, v2_model_input
from maas.inference.engine import InferenceEngine, ModelKey, Prediction
from maas.inference.servable import ServableArtifact, ServableVersion
from tests.factories import affine_onnx
from tests.inference.fakes import FakeResolver, doubling_torch_version, make_servable, write_artifact

pytestmark = pytest.mark.anyio
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


class Observer:
    def __init__(self) -> None:
        self.loads: list[tuple[ModelKey, int]] = []
        self.evictions: list[tuple[ModelKey, str]] = []
        self.batches: list[tuple[int, int]] = []

    def on_load(self, key: ModelKey, seconds: float, footprint_bytes: int) -> None:
        self.loads.append((key, footprint_bytes))

    def on_evict(self, key: ModelKey, reason: str) -> None:
        self.evictions.append((key, reason))

    def on_usage(self, used_bytes: int, entries: int) -> None:
        pass

    def batch_observer(self, key: ModelKey) -> BatchObserver:
        outer = self

        class Batches:
            def on_batch(self, rows: int, requests: int, seconds: float, failed: bool) -> None:
                outer.batches.append((rows, requests))

            def on_reject(self, reason: str) -> None:
                pass

            def watch_queue(self, depth: Callable[[], int]) -> None:
                pass

        return Batches()


@pytest.fixture
def resolver(affine_artifact: ServableArtifact, classifier_artifact: ServableArtifact) -> FakeResolver:
    resolver = FakeResolver()
    resolver.add(make_servable({"onnx": affine_artifact}), None, "production")
    resolver.add(make_servable({"onnx": classifier_artifact}, model="iris", task="classification",
                               classes=IRIS_CLASSES), None)
    return resolver


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
async def engine(resolver: FakeResolver, observer: Observer) -> AsyncIterator[InferenceEngine]:
    engine = InferenceEngine(Settings(max_batch_size=8), resolver, observer)
    await engine.start()
    yield engine
    await engine.stop()


async def test_concurrent_predictions_each_get_their_own_rows(engine: InferenceEngine, observer: Observer) -> None:
    inputs = [np.full([1 + i % 3, 4], i, dtype=np.float32) for i in range(50)]
    results = await asyncio.gather(*(engine.predict("acme", "affine", None, None, x) for x in inputs))
    for x, result in zip(inputs, results, strict=True):
        assert (result.model, result.version, result.variant) == ("affine", 1, "onnx")
        np.testing.assert_array_equal(result.outputs["output"], 2 * x + 1)
    assert len(observer.loads) == 1  # fifty cold requests, one load
    assert sum(requests for _, requests in observer.batches) == 50
    assert len(observer.batches) < 50  # they were batched
    assert max(rows for rows, _ in observer.batches) <= 8


async def test_four_becomes_nine_through_the_whole_path(engine: InferenceEngine) -> None:
    result = await engine.predict("acme", "affine", 1, "onnx", np.full([1, 4], 4.0, dtype=np.float32))
    answer = engine.postprocess(await engine.resolve("acme", "affine", 1), result.outputs)
    assert orjson.loads(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)) == {
        "predictions": [[9.0, 9.0, 9.0, 9.0]]
    }


async def test_classifiers_answer_in_the_datasets_own_labels(engine: InferenceEngine) -> None:
    x = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
    result = await engine.predict("acme", "iris", None, None, x)
    servable = await engine.resolve("acme", "iris")
    answer = engine.postprocess(servable, result.outputs)
    assert answer["predictions"].tolist() == IRIS_CLASSES
    assert np.allclose(np.sum(answer["probabilities"], axis=1), 1.0)
    v2 = engine.v2_outputs(servable, result.outputs)
    assert v2["label"].tolist() == IRIS_CLASSES


async def test_metadata_names_the_tensors(engine: InferenceEngine) -> None:
    meta = await engine.metadata("acme", "iris")
    assert meta.inputs == [TensorSpec("input", "FP32", [-1, 4])]
    assert meta.outputs == [TensorSpec("probabilities", "FP32", [-1, 3]), TensorSpec("label", "BYTES", [-1])]
    assert (meta.servable.version, meta.variant, meta.platform) == (1, "onnx", "onnxruntime_onnx")


async def test_resolutions_are_cached_until_invalidated(engine: InferenceEngine, resolver: FakeResolver) -> None:
    x = np.zeros([1, 4], dtype=np.float32)
    await asyncio.gather(*(engine.predict("acme", "affine", None, None, x) for _ in range(10)))
    assert resolver.calls == 1
    engine.invalidate("acme", "affine")
    await engine.predict("acme", "affine", None, None, x)
    assert resolver.calls == 2


async def test_an_alias_switch_warms_the_new_version_before_traffic_moves(
    engine: InferenceEngine, resolver: FakeResolver, tmp_path: Path
) -> None:
    x = np.zeros([1, 4], dtype=np.float32)
    assert (await engine.predict("acme", "affine", None, None, x)).version == 1
    v2 = make_servable({"onnx": write_artifact(tmp_path / "v2.onnx", affine_onnx(weight=3.0))}, version=2)
    resolver.add(v2, None, "production")  # the registry moved the alias
    assert (await engine.predict("acme", "affine", None, None, x)).version == 1  # this replica has not switched yet
    warmed = await engine.warm("acme", "affine", "production")
    assert warmed.version == 2
    assert ModelKey("acme", "affine", 2, "onnx") in [m.key for m in engine.loaded()]
    result = await engine.predict("acme", "affine", None, None, np.ones([1, 4], dtype=np.float32))
    assert result.version == 2 and result.outputs["output"][0, 0] == 4.0


async def test_a_budget_too_small_for_two_models_keeps_only_the_latest(
    resolver: FakeResolver, observer: Observer
) -> None:
    engine = InferenceEngine(Settings(model_cache_mb=0.001), resolver, observer)
    await engine.start()
    x = np.zeros([1, 4], dtype=np.float32)
    await engine.predict("acme", "affine", None, None, x)
    await engine.predict("acme", "iris", None, None, x)
    assert [m.key.model for m in engine.loaded()] == ["iris"]
    assert observer.evictions == [(ModelKey("acme", "affine", 1, "onnx"), "budget")]
    assert all(footprint > 0 for _, footprint in observer.loads)
    await engine.stop()


async def test_footprints_are_measured_not_guessed(engine: InferenceEngine, affine_artifact: ServableArtifact) -> None:
    await engine.load("acme", "affine")
    (model,) = engine.loaded()
    assert model.footprint_bytes >= affine_artifact.size_bytes
    assert engine.stats().used_bytes == model.footprint_bytes


async def test_unload_and_ready(engine: InferenceEngine) -> None:
    assert await engine.ready("acme", "affine")
    key = await engine.load("acme", "affine", 1, "onnx")
    assert await engine.unload("acme", "affine") == [key]
    assert engine.loaded() == []


@pytest.mark.parametrize(
    ("model", "ref", "variant", "x", "error"),
    [
        ("ghost", None, None, np.zeros([1, 4], np.float32), ModelNotFound),
        ("affine", None, "onnx-int8", np.zeros([1, 4], np.float32), ArtifactNotFound),
        ("affine", None, None, np.zeros([1, 5], np.float32), InvalidInput),
        ("affine", None, None, np.zeros([1, 4], np.float64), InvalidInput),
    ],
)
async def test_bad_requests_fail_cleanly(
    engine: InferenceEngine, model: str, ref: Any, variant: str | None, x: np.ndarray, error: type
) -> None:
    with pytest.raises(error):
        await engine.predict("acme", model, ref, variant, x)
    assert engine.loaded() == []


async def test_a_tampered_artifact_is_refused(resolver: FakeResolver, tmp_path: Path) -> None:
    artifact = write_artifact(tmp_path / "m.onnx", affine_onnx())
    artifact.path.write_bytes(affine_onnx(weight=5.0))
    resolver.add(make_servable({"onnx": artifact}, model="tampered"), None)
    engine = InferenceEngine(Settings(), resolver)
    await engine.start()
    with pytest.raises(ArtifactCorrupt):
        await engine.predict("acme", "tampered", None, None, np.zeros([1, 4], np.float32))
    await engine.stop()


class SlowBackend:
    """The real ONNX backend, loading slowly, to show deadlines cover a cold load."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def load(self) -> None:
        time.sleep(0.3)
        self._inner.load()


async def test_a_deadline_covers_a_cold_load_and_the_load_still_completes(resolver: FakeResolver) -> None:
    def slow(servable: ServableVersion, artifact: ServableArtifact, settings: Settings) -> Backend:
        return SlowBackend(build_backend(servable, artifact, settings))  # type: ignore[return-value]

    engine = InferenceEngine(Settings(), resolver, backend_factory=slow)
    await engine.start()
    x = np.zeros([1, 4], np.float32)
    patient = asyncio.ensure_future(engine.predict("acme", "affine", None, None, x))
    with pytest.raises(DeadlineExceeded, match="still loading"):
        await engine.predict("acme", "affine", None, None, x, deadline=time.monotonic() + 0.05)
    assert (await patient).outputs["output"][0, 0] == 1.0
    await engine.stop()


async def test_stop_drains_requests_in_flight(engine: InferenceEngine) -> None:
    await engine.load("acme", "affine")
    x = np.ones([1, 4], np.float32)
    pending = [asyncio.ensure_future(engine.predict("acme", "affine", None, None, x)) for _ in range(20)]
    await asyncio.sleep(0)
    await engine.stop()
    assert all(p.done() for p in pending)
    assert [p.result().outputs["output"][0, 0] for p in pending] == [3.0] * 20
    with pytest.raises(Unavailable):
        await engine.predict("acme", "affine", None, None, x)


async def test_torch_weights_trained_by_maas_serve_through_the_engine(tmp_path: Path) -> None:
    pytest.importorskip("maas.training.weights")
    resolver = FakeResolver()
    resolver.add(doubling_torch_version(tmp_path), None)
    engine = InferenceEngine(Settings(device="cpu"), resolver)
    await engine.start()
    result = await engine.predict("acme", "affine", None, "torch", np.full([3, 4], 4.0, np.float32))
    np.testing.assert_array_equal(result.outputs["prediction"], np.full([3, 4], 9.0))
    meta = await engine.metadata("acme", "affine", None, "torch")
    assert meta.outputs == [TensorSpec("prediction", "FP32", [-1, 4])]
    await engine.stop()


async def test_the_predict_data_plane_from_json_rows_to_labels(
    engine: InferenceEngine, resolver: FakeResolver, classifier_artifact: ServableArtifact
) -> None:
    names = ["a", "b", "c", "d"]
    resolver.add(make_servable({"onnx": classifier_artifact}, model="named", task="classification",
                               classes=IRIS_CLASSES, feature_names=names), None)
    body = orjson.loads(b'{"inputs": [{"d": 0, "c": 5, "b": 0, "a": 0}, {"b": 2, "a": 0, "c": 0, "d": 0}]}')
    servable = await engine.resolve("acme", "named", None)
    x = decode_rows(body["inputs"], servable.input_shape, servable.feature_names)
    answer = engine.postprocess(servable, (await engine.infer(servable, None, x)).outputs)
    assert answer["predictions"].tolist() == ["virginica", "versicolor"]


@pytest.mark.parametrize("binary", [False, True])
async def test_the_v2_data_plane_answers_tritonclient(engine: InferenceEngine, binary: bool) -> None:
    tensor = triton.InferInput("input", [2, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 0, 0, 0], [0, 0, 1, 0]], np.float32), binary_data=binary)
    body, header_length = _get_inference_request(
        inputs=[tensor], request_id="", outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
        priority=0, timeout=None, custom_parameters=None,
    )
    request = parse_v2_request(body, header_length)
    meta = await engine.metadata("acme", "iris")
    x = v2_model_input(request, meta.inputs[0].name, meta.servable.input_shape)
    prediction = await engine.infer(meta.servable, None, x)
    outputs = engine.v2_outputs(meta.servable, prediction.outputs)
    reply, reply_header_length = encode_v2_response(
        model_name="iris", model_version=str(prediction.version), outputs=outputs, request=request
    )
    result = triton.InferResult.from_response_body(reply, header_length=reply_header_length)
    assert [label.decode() for label in result.as_numpy("label")] == ["setosa", "virginica"]
    assert result.as_numpy("probabilities").shape == (2, 3)


async def test_a_models_own_batching_settings_reach_its_loaded_runner(
    engine: InferenceEngine, resolver: FakeResolver, observer: Observer, affine_artifact: ServableArtifact
) -> None:
    # The engine's default is 8 rows a batch (see the fixture); the model asks for 2, then for 3.
    x = np.full([1, 4], 4.0, dtype=np.float32)
    await engine.predict("acme", "affine", None, None, x)  # loaded with the server's settings
    for size in (2, 3):
        servable = dataclasses.replace(make_servable({"onnx": affine_artifact}), max_batch_size=size)
        resolver.add(servable, None, "production")
        engine.invalidate("acme", "affine")  # what the registry's hook does when the settings change
        observer.batches.clear()
        results = await asyncio.gather(*(engine.predict("acme", "affine", None, None, x) for _ in range(12)))
        assert all(r.outputs["output"][0, 0] == 9.0 for r in results)
        assert max(rows for rows, _ in observer.batches) == size  # the same loaded runner, batching anew
    assert len(observer.loads) == 1


async def test_infer_nowait_answers_a_loaded_model_by_callback_and_holds_it_until_then(
    engine: InferenceEngine,
) -> None:
    servable = await engine.resolve("acme", "affine")
    x = np.full([1, 4], 4.0, dtype=np.float32)
    landed: list[object] = []
    assert engine.infer_nowait(servable, None, x, landed.append) is None  # not loaded: nothing queued
    assert engine.loaded() == [] and landed == []
    await engine.infer(servable, None, x)  # loads it

    flight = engine.infer_nowait(servable, None, x, landed.append)
    assert flight is not None
    assert engine.loaded()[0].leases == 1  # the model cannot be evicted under the waiting request
    deadline = time.monotonic() + 5
    while not landed:
        assert time.monotonic() < deadline, "no landing"
        await asyncio.sleep(0.001)
    (prediction,) = landed
    assert isinstance(prediction, Prediction) and (prediction.model, prediction.variant) == ("affine", "onnx")
    np.testing.assert_array_equal(prediction.outputs["output"], [[9.0] * 4])
    assert engine.loaded()[0].leases == 0
    flight.cancel()  # landed already: nothing to do
    assert engine.loaded()[0].leases == 0


async def test_a_flight_cancelled_before_its_batch_releases_the_model_and_gets_no_callback(
    engine: InferenceEngine,
) -> None:
    servable = await engine.resolve("acme", "affine")
    x = np.full([1, 4], 4.0, dtype=np.float32)
    await engine.infer(servable, None, x)
    landed: list[object] = []
    flight = engine.infer_nowait(servable, None, x, landed.append)
    assert flight is not None
    flight.cancel()  # before the batcher's consumer ran: it leaves the queue
    assert engine.loaded()[0].leases == 0
    await engine.infer(servable, None, x)  # the model still answers others
    await asyncio.sleep(0.01)
    assert landed == []


@pytest.mark.parametrize(
    ("variant", "x", "error"),
    [("onnx-int8", np.zeros([1, 4], np.float32), ArtifactNotFound), (None, np.zeros([1, 5], np.float32), InvalidInput)],
)
async def test_infer_nowait_refuses_bad_requests_at_once(
    engine: InferenceEngine, variant: str | None, x: np.ndarray, error: type
) -> None:
    servable = await engine.resolve("acme", "affine")
    await engine.infer(servable, None, np.zeros([1, 4], np.float32))
    with pytest.raises(error):
        engine.infer_nowait(servable, variant, x, lambda landing: None)
    assert engine.loaded()[0].leases == 0
