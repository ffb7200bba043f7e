"""The ASGI app factory: routes over one ``Gateway``, edge limits, auth, errors in the OpenAI shape."""

from __future__ import annotations

import contextlib
import gc
import importlib.resources
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.config import Settings, load_settings
from modelyard.gateway import Gateway
from modelyard.server.admin import AdminRoutes
from modelyard.server.anthropic_routes import AnthropicRoutes
from modelyard.server.auth import AuthMiddleware, KeyResolver, KeySpendMiddleware
from modelyard.server.errors import error_response
from modelyard.server.health import HealthRoutes, RoutingCollector
from modelyard.server.hosts import HostAllowList, HostCheckMiddleware
from modelyard.server.http import json_response
from modelyard.server.limits import BodyLimitMiddleware, ConcurrencyLimitMiddleware
from modelyard.server.metrics import Metrics, MetricsMiddleware
from modelyard.server.openai_routes import OpenAIRoutes, not_served_routes
from modelyard.web.routes import web_routes
from modelyard.web.session import WebGate, WebSessions

#: Container allocations (net of frees) between two young-generation collections; CPython's default is 700.
#: A request makes and frees a few hundred objects by reference counting, but those alive when a collection
#: starts (the requests in flight, rows queued for the log) are traversed every time: with the default, the
#: collector took ~10 % of the server's CPU under load (~65 µs a request, benchmarks/RESULTS.md). Requests
#: rarely make reference cycles, so collecting less often keeps little garbage around.
YOUNG_GC_THRESHOLD = 10_000


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the server app. The Gateway starts (migrations, log writer) with the app's lifespan."""
    settings = settings if settings is not None else load_settings()
    metrics = Metrics()
    gateway_ref: dict[str, Gateway] = {}

    async def key_store() -> Any:
        return (await gateway_ref["gateway"].stores()).keys

    async def web_logouts() -> Any:
        return (await gateway_ref["gateway"].stores()).web_sessions

    resolver = KeyResolver(key_store, Gateway.key_secret_for(settings))
    spend = KeySpendMiddleware(key_store, resolver)
    gateway = Gateway(settings, middleware=[MetricsMiddleware(metrics), spend])
    gateway_ref["gateway"] = gateway
    metrics.registry.register(RoutingCollector(gateway))  # breaker state per deployment, shared-state health
    sessions = (  # the workbench's logins
        WebSessions(settings.master_key, revocations=web_logouts) if settings.master_key else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        # Everything loaded at start-up lives as long as the process: keep it out of the collector's way
        # (full collections otherwise stalled the event loop for 60-70 ms under load; see benchmarks/RESULTS.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])  # for the process's life, as the freeze
        try:
            yield
        finally:
            await spend.drain()
            await gateway.aclose()

    routes = [
        *OpenAIRoutes(gateway, settings.server).routes(),
        *AnthropicRoutes(gateway, settings.server).routes(),
        *AdminRoutes(gateway).routes(),
        *HealthRoutes(gateway).routes(),
        Route("/metrics", metrics.endpoint),
        Route("/openapi.json", openapi_document),
        *not_served_routes(),
        *web_routes(gateway, sessions),
    ]
    app = Starlette(
        routes=routes,
        middleware=_middleware(settings, resolver, sessions),
        exception_handlers={errors.ModelyardError: _on_error, HTTPException: _on_http_error, Exception: _on_error},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.key_resolver = resolver
    app.state.metrics = metrics
    return app


def _middleware(settings: Settings, resolver: KeyResolver, sessions: WebSessions | None = None) -> list[Middleware]:
    stack = [
        Middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes),
        Middleware(ConcurrencyLimitMiddleware, limit=settings.server.max_concurrency),
    ]
    origins = settings.server.cors_origins
    if origins:
        # "*" with credentials would let any site act as the user: never both.
        stack.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["*"],
                allow_headers=["*"],
                allow_credentials="*" not in origins,
            ),
        )
    hosts = HostAllowList(settings.server.allowed_hosts, loopback=not settings.master_key)
    if hosts.active:
        stack.insert(0, Middleware(HostCheckMiddleware, hosts=hosts))  # before anything reads the request
    web_gate = WebGate(sessions) if sessions is not None else None
    stack.append(Middleware(AuthMiddleware, master_key=settings.master_key, resolver=resolver, web_gate=web_gate))
    return stack


async def _on_error(request: Request, exc: Exception) -> Response:
    response = error_response(exc)
    response.headers.update(getattr(exc, "headers", None) or {})  # x-ratelimit-* of a gateway limit
    return response


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: errors.ModelyardError = errors.NotFoundError(f"no route {request.url.path}", code="unknown_route")
    elif exc.status_code == 405:
        error = errors.BadRequestError(
            f"{request.method} is not allowed on {request.url.path}", status=405, code="method_not_allowed"
        )
    else:
        error = errors.BadRequestError(str(exc.detail), status=exc.status_code)
    return error_response(error)


async def openapi_document(request: Request) -> Response:
    """The OpenAPI description of the routes modelyard serves."""
    text = importlib.resources.files("modelyard.server").joinpath("openapi.json").read_bytes()
    return json_response(orjson.loads(text))
