"""The lock-free request collectors expose exactly what prometheus-client's own would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from maas.observability.collectors import LoopCounter, LoopHistogram
from maas.observability.metrics import LATENCY_BUCKETS, Metrics

OBSERVATIONS = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.02, 0.5, 7.0, 99.0]  # bounds themselves included


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample as (name, sorted labels, value), without prometheus-client's ``_created`` timestamps."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_histogram_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopHistogram("latency_seconds", "Latency.", ["model"], LATENCY_BUCKETS, registry=ours)
    reference = Histogram("latency_seconds", "Latency.", ["model"], buckets=LATENCY_BUCKETS, registry=theirs)
    for i, value in enumerate(OBSERVATIONS):
        model = "a" if i % 2 else "b"
        mine.labels(model).observe(value)
        reference.labels(model).observe(value)
    assert samples(ours) == samples(theirs)


def test_counter_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopCounter("requests_total", "Requests.", ["status"], registry=ours)
    reference = Counter("requests_total", "Requests.", ["status"], registry=theirs)
    for status, times in (("200", 5), ("503", 2)):
        for _ in range(times):
            mine.labels(status).inc()
            reference.labels(status).inc()
    mine.labels("200").inc(2.5)
    reference.labels("200").inc(2.5)
    assert samples(ours) == samples(theirs)


def test_children_are_kept_and_label_counts_are_checked() -> None:
    counter = LoopCounter("requests_total", "Requests.", ["model", "status"])
    assert counter.labels("m", "200") is counter.labels("m", "200")
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("m")


def test_a_name_cannot_be_registered_twice() -> None:
    registry = CollectorRegistry()
    LoopCounter("requests_total", "Requests.", ["status"], registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("requests_total", "Requests.", ["status"], registry=registry)


def test_the_metrics_page_shows_request_metrics_by_route() -> None:
    metrics = Metrics()
    metrics.observe_http("/predict", "POST", 200, 0.0007)
    metrics.observe_http("/predict", "POST", 200, 0.003)
    text = metrics.render().decode()
    assert 'maas_http_requests_total{method="POST",route="/predict",status="200"} 2.0' in text
    assert 'maas_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/predict"} 1.0' in text
    assert 'maas_http_request_duration_seconds_count{method="POST",route="/predict"} 2.0' in text
