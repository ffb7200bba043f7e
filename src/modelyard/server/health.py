"""``/health`` (the process answers), ``/ready`` (database, log writer, default model, deployments, shared state),
and the routing admin API: ``GET /admin/routing``, ``PUT``/``DELETE /admin/rollouts/{name}``.

Ejected deployments and a Redis outage are reported by ``/ready`` but do not make the replica unready: the
router routes around the first and limits fail open to a local share during the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.server.http import json_response, read_json

STATE_VALUES = {"healthy": 0, "cooling": 1, "ejected": 2}


class HealthRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        return [
            Route("/health", self.health),
            Route("/ready", self.ready),
            Route("/admin/routing", self.routing),
            Route("/admin/rollouts/{name:path}", self.rollout, methods=["PUT", "DELETE"]),
        ]

    async def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            store = await self.gateway.stores()
            await store.logs.count()
            checks["database"] = "ok"
        except Exception as exc:  # report, do not crash the probe
            checks["database"] = f"error: {type(exc).__name__}"
        writer = self.gateway.writer
        checks["log_writer"] = "ok" if writer is None or writer.stats.healthy else "spilling to disk"
        checks["default_model"] = self.gateway.readiness(self.gateway.settings.default_model)
        status = self.gateway.routing_status()
        checks["deployments"] = {ident: d["state"] for ident, d in status["deployments"].items()}
        checks["shared_state"] = status["shared_state"].get("state", "ok")
        ready = checks["database"] == "ok" and checks["default_model"] == "ok"
        return json_response({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    async def routing(self, request: Request) -> Response:
        """Breaker state, in-flight and latency per deployment; groups; rollouts; shared state."""
        return json_response(self.gateway.routing_status())

    async def rollout(self, request: Request) -> Response:
        """``PUT {"percent": 25}`` changes a rollout at run time (every replica); ``DELETE`` restores the config."""
        name = request.path_params["name"]
        percent: float | None = None
        if request.method == "PUT":
            body = await read_json(request)
            value = body.get("percent")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise errors.BadRequestError("percent must be a number from 0 to 100", param="percent")
            percent = float(value)
        effective = await self.gateway.set_rollout(name, percent)
        return json_response({"name": name, "percent": effective})


class RoutingCollector(Collector):
    """Prometheus gauges read at scrape time from the health board, the shared state and the log writer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        status = self.gateway.routing_status()
        state = GaugeMetricFamily(
            "modelyard_deployment_state", "0 healthy, 1 cooling (429), 2 ejected (breaker)", labels=["deployment"]
        )
        in_flight = GaugeMetricFamily(
            "modelyard_deployment_in_flight", "Upstream calls in flight", labels=["deployment"]
        )
        latency = GaugeMetricFamily(
            "modelyard_deployment_latency_seconds", "Moving average of attempt latency", labels=["deployment"]
        )
        failures = GaugeMetricFamily(
            "modelyard_deployment_consecutive_failures", "Failures since the last success", labels=["deployment"]
        )
        for ident, d in status["deployments"].items():
            state.add_metric([ident], STATE_VALUES.get(d["state"], 0))
            in_flight.add_metric([ident], d["in_flight"])
            failures.add_metric([ident], d["consecutive_failures"])
            if d["latency_ms"] is not None:
                latency.add_metric([ident], d["latency_ms"] / 1000)
        shared = status["shared_state"]
        up = GaugeMetricFamily("modelyard_shared_state_up", "1 when limits are shared through Redis (or in-process)")
        up.add_metric([], 1 if shared.get("state") == "ok" else 0)
        yield from (state, in_flight, latency, failures, up)
        yield from self._log_writer()

    def _log_writer(self) -> Iterator[Metric]:
        writer = self.gateway.writer
        if writer is None:
            return
        stats = writer.stats
        queued = GaugeMetricFamily("modelyard_log_queue_rows", "Request log rows waiting for the writer")
        queued.add_metric([], stats.queued)
        queued_bytes = GaugeMetricFamily(
            "modelyard_log_queue_bytes", "Estimated memory held by the request log rows waiting for the writer"
        )
        queued_bytes.add_metric([], stats.queued_bytes)
        rows = CounterMetricFamily("modelyard_log_rows", "Request log rows by what became of them", labels=["fate"])
        for fate in ("written", "duplicates", "spilled", "replayed", "rejected", "lost"):
            rows.add_metric([fate], getattr(stats, fate))
        yield from (queued, queued_bytes, rows)
