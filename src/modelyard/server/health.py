"""``/health`` (the process answers) and ``/ready`` (database reachable, log writer healthy, local model found)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard.gateway import Gateway
from modelyard.server.http import json_response


class HealthRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        return [Route("/health", self.health), Route("/ready", self.ready)]

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
        ready = checks["database"] == "ok" and checks["default_model"] == "ok"
        return json_response({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)
