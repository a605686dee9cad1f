"""The engine's metrics hooks: the queue depth is read live at scrape time, per model version."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

from maas.observability.inference import InferenceMetrics
from maas.observability.metrics import Metrics


class Key(NamedTuple):
    model: str
    version: int
    variant: str


def queue_depths(metrics: Metrics) -> dict[tuple[str, str], float]:
    (family,) = [f for f in text_string_to_metric_families(metrics.render().decode()) if f.name == "maas_queue_depth"]
    return {(s.labels["model"], s.labels["version"]): s.value for s in family.samples}


def test_queue_depth_is_read_at_scrape_time_and_leaves_with_the_model() -> None:
    metrics = Metrics()
    observer = InferenceMetrics(metrics)
    waiting = {"onnx": 3, "onnx-int8": 0}
    for variant in waiting:
        observer.batch_observer(Key("m", 1, variant)).watch_queue(lambda v=variant: waiting[v])
    assert queue_depths(metrics) == {("m", "1"): 3.0}
    waiting["onnx-int8"] = 4  # no batch has ended: the scrape still sees the queue grow
    assert queue_depths(metrics) == {("m", "1"): 7.0}  # the variants of one version add up
    observer.on_evict(Key("m", 1, "onnx"), "budget")
    assert queue_depths(metrics) == {("m", "1"): 4.0}
    observer.on_evict(Key("m", 1, "onnx-int8"), "unload")
    assert queue_depths(metrics) == {}


def test_a_failing_depth_never_fails_the_scrape() -> None:
    metrics = Metrics()
    observer = InferenceMetrics(metrics)
    observer.batch_observer(Key("bad", 1, "onnx")).watch_queue(lambda: 1 // 0)
    observer.batch_observer(Key("good", 2, "onnx")).watch_queue(lambda: 2)
    assert queue_depths(metrics) == {("good", "2"): 2.0}
