"""The inference engine's metrics: ``InferenceObserver`` implemented on the collectors of ``metrics.Metrics``.

The engine reports loads, evictions, cache usage and batches through hooks (it never imports Prometheus);
the API reports each request's outcome here. Label children are bound once per (model, version) and kept:
``labels()`` takes a lock and hashes its arguments, which is measurable at tens of thousands of requests a
second. Model names only become labels once they resolved, so clients cannot mint label values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from maas.observability.metrics import Metrics

UNRESOLVED = "-"  # the model label of a request that failed before its model was found


class _Key(Protocol):
    """What a loaded model's key tells (``maas.inference.engine.ModelKey``, without importing upwards)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def variant(self) -> str: ...


class _BatchMetrics:
    """One loaded model's batch hooks, with its label children bound."""

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self._batch_size = metrics.batch_size.labels(model, version)
        self._queue_depths = metrics.queue_depth
        self._labels = (model, version)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self._queue_depths.track(self, *self._labels, depth)

    def close(self) -> None:
        self._queue_depths.untrack(self)

    def on_batch(self, rows: int, requests: int, seconds: float, failed: bool) -> None:
        self._batch_size.observe(rows)

    def on_reject(self, reason: str) -> None:
        # Counted per request by the API (as inference_errors{code}), which sees every rejection anyway.
        pass


class _RequestMetrics:
    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self._metrics = metrics
        self._model, self._version = model, version
        self._ok = (metrics.inference_requests.labels(model, version, "200"),
                    metrics.inference_latency.labels(model, version, "200"))

    def observe(self, status: int, seconds: float) -> None:
        # By status, as a fast 503 or 422 must not pass for fast predictions (nor a 504 for slow ones).
        counter, latency = self._ok if status == 200 else (
            self._metrics.inference_requests.labels(self._model, self._version, str(status)),
            self._metrics.inference_latency.labels(self._model, self._version, str(status)))
        latency.observe(seconds)
        counter.inc()


class InferenceMetrics:
    """Implements ``maas.inference.engine.InferenceObserver`` and counts requests for the API."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._requests: dict[tuple[str, str], _RequestMetrics] = {}
        self._batches: dict[Any, _BatchMetrics] = {}  # by loaded model's key: its queue leaves the gauge on eviction

    # --- requests (called by the API) ----------------------------------------------------------------
    def observe_request(self, model: str, version: int | str, status: int, seconds: float) -> None:
        key = (model, str(version))
        bound = self._requests.get(key)
        if bound is None:
            bound = self._requests[key] = _RequestMetrics(self._metrics, *key)
        bound.observe(status, seconds)

    def observe_error(self, model: str | None, code: str) -> None:
        self._metrics.inference_errors.labels(model or UNRESOLVED, code).inc()

    # --- the engine's hooks --------------------------------------------------------------------------
    def batch_observer(self, key: _Key) -> _BatchMetrics:
        previous = self._batches.pop(key, None)
        if previous is not None:  # a load that failed left its hooks: they watch nothing
            previous.close()
        bound = self._batches[key] = _BatchMetrics(self._metrics, key.model, str(key.version))
        return bound

    def on_load(self, key: Any, seconds: float, footprint_bytes: int) -> None:
        self._metrics.model_load_seconds.labels(key.model, key.variant).observe(seconds)

    def on_evict(self, key: Any, reason: str) -> None:
        if reason == "budget":
            self._metrics.cache_evictions.inc()
        bound = self._batches.pop(key, None)
        if bound is not None:
            bound.close()

    def on_usage(self, used_bytes: int, entries: int) -> None:
        self._metrics.cache_bytes.set(used_bytes)
        self._metrics.cache_models.set(entries)
