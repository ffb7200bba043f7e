"""Prometheus metrics, fed by a gateway middleware (per logical request) and served at ``/metrics``."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from modelyard.pipeline import Call, ChatStream, Handler, Outcome, StreamEnd
from modelyard.types.chat import ChatChunk, ChatResponse
from modelyard.types.embeddings import EmbeddingResponse
from modelyard.types.usage import Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Distinct ``model`` label values kept; later ones count as ``other``. The label of a request that no model
#: served is the name the caller sent, so without a cap anyone could grow the series (and memory) without bound.
MAX_MODEL_LABELS = 500
OTHER_MODEL = "other"


#: Each bucket's ``le`` label as prometheus-client writes it (``0.005``, ``1.0``, ``+Inf``).
_BUCKET_LABELS = (*(repr(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")


class _Histogram:
    """One series of a latency histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # a value equal to a bound counts in its bucket
        self.sum += seconds

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, total = [], 0
        for bound, count in zip(_BUCKET_LABELS, self.counts, strict=True):
            total += count
            cumulative.append((bound, float(total)))
        return cumulative


class RequestCounts(Collector):
    """The per-request series (requests, latency, time to first token, tokens) as plain counts, exported in
    Prometheus's format when scraped: a prometheus-client metric takes a lock on every update, and its histogram
    looks for the bucket in Python. Updated and scraped on the event loop's thread only."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.ttft = _Histogram()
        self.tokens: dict[tuple[str, str], int] = {}

    def request(self, kind: str, model: str, status: str, seconds: float) -> None:
        key = (kind, model, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        latency = self.latency.get(kind)
        if latency is None:
            latency = self.latency[kind] = _Histogram()
        latency.observe(seconds)

    def add_tokens(self, model: str, kind: str, tokens: int) -> None:
        key = (model, kind)
        self.tokens[key] = self.tokens.get(key, 0) + tokens

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("modelyard_requests", "Logical requests", labels=["kind", "model", "status"])
        for labels, count in self.requests.items():
            requests.add_metric(labels, count)
        yield requests
        latency = HistogramMetricFamily("modelyard_request_seconds", "Request latency", labels=["kind"])
        for kind, series in self.latency.items():
            latency.add_metric([kind], series.buckets(), series.sum)
        yield latency
        ttft = HistogramMetricFamily("modelyard_ttft_seconds", "Time to first token")
        ttft.add_metric([], self.ttft.buckets(), self.ttft.sum)
        yield ttft
        tokens = CounterMetricFamily("modelyard_tokens", "Tokens", labels=["model", "type"])
        for model_type, count in self.tokens.items():
            tokens.add_metric(model_type, count)
        yield tokens

    def describe(self) -> Sequence[Metric]:
        return list(self.collect())


class Metrics:
    """The gateway's metrics in their own registry (so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.counts = RequestCounts()
        r.register(self.counts)
        self.cost = Counter("modelyard_cost_usd", "Cost in USD", ["model"], registry=r)
        self.errors = Counter("modelyard_errors", "Errors by type", ["type"], registry=r)
        # Read when scraped: a plain count is cheaper per request than the gauge's locked inc/dec.
        self.in_flight = 0
        Gauge("modelyard_in_flight", "Requests in flight", registry=r).set_function(lambda: self.in_flight)
        self.retries = Counter("modelyard_retries", "Upstream retries", registry=r)
        self.fallbacks = Counter("modelyard_fallbacks", "Requests served by a fallback model", registry=r)
        self.cache_hits = Counter("modelyard_cache_hits", "Responses served from cache", registry=r)
        self._models: set[str] = set()
        # Labelled children by label values: ``labels()`` validates and locks on every call.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def model_label(self, model: str) -> str:
        """``model``, or ``other`` once ``MAX_MODEL_LABELS`` distinct models have been counted."""
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return OTHER_MODEL
        self._models.add(model)
        return model

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per distinct label values."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")


class MetricsMiddleware:
    """Counts every logical request once, when it ends (streams included)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        self.m.in_flight += 1
        try:
            outcome = await next(call)
        except BaseException as exc:
            self.m.in_flight -= 1
            self._finish(call, "error", None, type(exc).__name__)
            raise
        if isinstance(outcome, ChatResponse | EmbeddingResponse):
            self.m.in_flight -= 1
            self._finish(call, "ok", outcome.usage, None)
            return outcome
        return self._count_stream(call, outcome)

    def _count_stream(self, call: Call, stream: ChatStream) -> ChatStream:
        usage: Usage | None = None

        def on_first_token(chunk: ChatChunk) -> None:
            self.m.counts.ttft.observe(time.monotonic() - call.started)

        def on_usage(chunk: ChatChunk) -> None:
            nonlocal usage
            usage = chunk.usage

        def on_end(end: StreamEnd) -> None:
            self.m.in_flight -= 1
            if end.completed:
                self._finish(call, "ok", usage, None)
            else:  # failed, or closed before its end (the client went away)
                error = type(end.error).__name__ if end.error is not None else "ClosedEarly"
                self._finish(call, "error", usage, error)

        return stream.observe(on_end=on_end, on_first_token=on_first_token, on_usage=on_usage, after_last_frame=True)

    def _finish(self, call: Call, status: str, usage: Usage | None, error: str | None) -> None:
        m, info = self.m, call.info
        model = m.model_label(info.served_model or call.request.model)
        m.counts.request(call.kind, model, status, time.monotonic() - call.started)
        if error:
            m.child(m.errors, error).inc()
        if usage is not None:
            m.counts.add_tokens(model, "prompt", usage.prompt_tokens)
            m.counts.add_tokens(model, "completion", usage.completion_tokens)
        if info.cost:
            m.child(m.cost, model).inc(info.cost)
        if info.retries:
            m.retries.inc(info.retries)
        if info.fallbacks:
            m.fallbacks.inc()
        if info.cache_hit:
            m.cache_hits.inc()
