"""The ``model`` label is bounded: a caller sending made-up model names cannot grow the series without end."""

from __future__ import annotations

from prometheus_client import generate_latest

from modelyard.server.metrics import MAX_MODEL_LABELS, OTHER_MODEL, Metrics


def test_model_label_values_are_capped_and_the_rest_count_as_other() -> None:
    metrics = Metrics()
    labels = [metrics.model_label(f"made-up-{i}") for i in range(MAX_MODEL_LABELS + 3)]
    assert labels[:MAX_MODEL_LABELS] == [f"made-up-{i}" for i in range(MAX_MODEL_LABELS)]
    assert labels[MAX_MODEL_LABELS:] == [OTHER_MODEL] * 3
    assert metrics.model_label("made-up-0") == "made-up-0"  # one already counted keeps its own series


def test_a_cached_child_counts_into_the_same_series() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.child(metrics.requests, "chat", "m", "ok").inc()
    assert b'modelyard_requests_total{kind="chat",model="m",status="ok"} 3.0' in generate_latest(metrics.registry)
