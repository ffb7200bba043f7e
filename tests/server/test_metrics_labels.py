"""The ``model`` label is bounded: a caller sending made-up model names cannot grow the series without end."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelyard.server.metrics import LATENCY_BUCKETS, MAX_MODEL_LABELS, OTHER_MODEL, Metrics


def test_model_label_values_are_capped_and_the_rest_count_as_other() -> None:
    metrics = Metrics()
    labels = [metrics.model_label(f"made-up-{i}") for i in range(MAX_MODEL_LABELS + 3)]
    assert labels[:MAX_MODEL_LABELS] == [f"made-up-{i}" for i in range(MAX_MODEL_LABELS)]
    assert labels[MAX_MODEL_LABELS:] == [OTHER_MODEL] * 3
    assert metrics.model_label("made-up-0") == "made-up-0"  # one already counted keeps its own series


def test_a_cached_child_counts_into_the_same_series() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.child(metrics.errors, "TimeoutError").inc()
    assert b'modelyard_errors_total{type="TimeoutError"} 3.0' in generate_latest(metrics.registry)


def test_request_counts_export_as_prometheus_client_would() -> None:
    """The per-request series are plain counts; scraped, they read exactly as prometheus-client's own metrics."""
    metrics = Metrics()
    for seconds in (0.004, 0.005, 0.2, 400.0):  # on a bound, between bounds, above every bound
        metrics.counts.request("chat", "m", "ok", seconds)
    metrics.counts.add_tokens("m", "prompt", 7)
    metrics.counts.ttft.observe(0.03)
    reference = CollectorRegistry()
    latency = Histogram(
        "modelyard_request_seconds", "Request latency", ["kind"], buckets=LATENCY_BUCKETS, registry=reference
    )
    ttft = Histogram("modelyard_ttft_seconds", "Time to first token", buckets=LATENCY_BUCKETS, registry=reference)
    for seconds in (0.004, 0.005, 0.2, 400.0):
        latency.labels("chat").observe(seconds)
    ttft.observe(0.03)
    ours = generate_latest(metrics.registry).decode().splitlines()
    for line in generate_latest(reference).decode().splitlines():
        if line.startswith("modelyard_") and "_created" not in line:
            assert line in ours
    assert 'modelyard_requests_total{kind="chat",model="m",status="ok"} 4.0' in ours
    assert 'modelyard_tokens_total{model="m",type="prompt"} 7.0' in ours
