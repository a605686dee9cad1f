"""Labelled counters and histograms for the request path: an update is a dict-free attribute add, no lock.

prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a lock per call and the histogram walks
its buckets in Python; at tens of thousands of predictions a second that measured ~2-3 us each, four times
per request (HTTP and inference, count and latency). These collectors keep plain numbers per bound label
child instead and build the metric families only when Prometheus scrapes, through the same registry and
exposition code, so ``/metrics`` reads exactly as before.

They are updated from the event loop's thread only (the HTTP middleware, the hot path, the inference
endpoints): without a lock, two threads adding at once could lose a count. Scrapes may read from any thread;
a scrape that lands mid-update sees the count either before or after it, as with any counter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less or equal": the first bound >= value holds it.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


Child = TypeVar("Child", CounterChild, HistogramChild)


class _Family(Collector, Generic[Child]):
    """A metric name with its label names, its children by label values, and its registration."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Child:
        """The child of these label values (made on first use and kept: the hot path binds it once)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}.")
            child = self._children[values] = self._new_child()
        return child

    def describe(self) -> Iterator[Metric]:
        # Registration reads the names from here instead of collecting (which would be empty at that time).
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(dict(self._children))

    def _new_child(self) -> Child:
        raise NotImplementedError

    def _families(self, children: dict[tuple[str, ...], Child]) -> Iterator[Metric]:
        raise NotImplementedError


class LoopCounter(_Family[CounterChild]):
    """Like ``prometheus_client.Counter`` with labels; ``labels(...)`` children are kept and reused."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def _families(self, children: dict[tuple[str, ...], CounterChild]) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in children.items():
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_Family[HistogramChild]):
    """Like ``prometheus_client.Histogram`` with labels and fixed buckets."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry | None = None) -> None:
        self._bounds = tuple(sorted(float(b) for b in buckets))
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def _families(self, children: dict[tuple[str, ...], HistogramChild]) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in children.items():
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(values), buckets, total)
        yield family
