"""Every Prometheus collector of maas, defined once on an injected registry.

Labels are bounded: route templates (never raw paths), model names and versions, status codes, error codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from maas.observability.collectors import LoopCounter, LoopHistogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _RegistryGauges(Collector):
    """Counts read from the database at scrape time (models, versions, datasets, jobs by status)."""

    def __init__(self, source: Callable[[], dict[str, dict[str, float]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self.source()
        except Exception:  # a scrape must not fail because the database blinked
            return
        for name, by_label in counts.items():
            family = GaugeMetricFamily(f"maas_registry_{name}", f"Number of {name} in the registry.",
                                       labels=["kind"])
            for label, value in by_label.items():
                family.add_metric([label], value)
            yield family


class QueueDepths(Collector):
    """``maas_queue_depth``: requests waiting per loaded model, asked of the batchers at scrape time.

    A gauge set by each batch would go stale exactly when it matters: while a batch hangs, or requests wait in
    a timed window, no batch ends to report the queue growing behind it.
    """

    def __init__(self) -> None:
        self._sources: dict[object, tuple[str, str, Callable[[], int]]] = {}

    def track(self, owner: object, model: str, version: str, depth: Callable[[], int]) -> None:
        self._sources[owner] = (model, version, depth)

    def untrack(self, owner: object) -> None:
        self._sources.pop(owner, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("maas_queue_depth", "Requests waiting per loaded model.",
                                   labels=["model", "version"])
        totals: dict[tuple[str, str], int] = {}
        for model, version, depth in list(self._sources.values()):  # variants of one version add up
            try:
                waiting = depth()
            except Exception:  # read from the scrape's thread while the loop moves on: skip, never fail a scrape
                continue
            totals[(model, version)] = totals.get((model, version), 0) + waiting
        for (model, version), waiting in totals.items():
            family.add_metric([model, version], waiting)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Updated on every request by the event loop: lock-free collectors (see collectors.py).
        self.http_requests = LoopCounter("maas_http_requests_total", "HTTP requests.",
                                         ["route", "method", "status"], registry=r)
        self.http_latency = LoopHistogram("maas_http_request_duration_seconds", "HTTP request latency.",
                                          ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.jobs_finished = Counter("maas_jobs_finished_total", "Jobs that ended, by kind and status.",
                                     ["kind", "status"], registry=r)
        self.job_duration = Histogram("maas_job_duration_seconds", "Wall time of job attempts.", ["kind"],
                                      buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600), registry=r)
        self.jobs_running = Gauge("maas_jobs_running", "Jobs running in this replica.", registry=r)
        self.inference_requests = LoopCounter("maas_inference_requests_total", "Prediction requests.",
                                              ["model", "version", "status"], registry=r)
        self.inference_latency = LoopHistogram("maas_inference_request_duration_seconds",
                                               "Prediction latency, queueing included.",
                                               ["model", "version", "status"],
                                               buckets=LATENCY_BUCKETS, registry=r)
        self.inference_errors = LoopCounter("maas_inference_errors_total", "Prediction errors by code.",
                                            ["model", "code"], registry=r)
        self.batch_size = LoopHistogram("maas_batch_size", "Rows per executed batch.", ["model", "version"],
                                        buckets=BATCH_BUCKETS, registry=r)  # observed by the batcher, on the loop
        self.queue_depth = QueueDepths()
        r.register(self.queue_depth)
        self.model_load_seconds = Histogram("maas_model_load_seconds", "Time to load and warm a model.",
                                            ["model", "variant"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
                                            registry=r)
        self.cache_bytes = Gauge("maas_model_cache_bytes", "Measured memory of loaded models.", registry=r)
        self.cache_models = Gauge("maas_model_cache_models", "Loaded models.", registry=r)
        self.cache_evictions = Counter("maas_model_cache_evictions_total", "Models unloaded to fit the budget.",
                                       registry=r)
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def add_registry_source(self, source: Callable[[], dict[str, dict[str, float]]]) -> None:
        self.registry.register(_RegistryGauges(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        # Route templates are few, so their children are kept: one dict lookup instead of two labels() calls.
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (self.http_latency.labels(route, method),
                                                    self.http_requests.labels(route, method, str(status)))
        children[0].observe(seconds)
        children[1].inc()
