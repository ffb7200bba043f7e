"""The floor with every per-request duty modelyard has on the default configuration: what a rewritten request path
would cost, feature for feature. ``lean_floor.py`` left these out; this adds each, done once and directly:

- the Host check (loopback names only) and the request body limit (413), both before the body is parsed;
- the concurrency limit (503 with ``Retry-After`` when over) and the in-flight gauge;
- auth: none on loopback without a master key, as modelyard (a settings check);
- the gateway-only body fields (``fallbacks``, ``tags``, ``timeout``, ``max_retries``...) and ``x-modelyard-*``
  headers read off the request;
- the routing plan from modelyard's own ``Router`` (its groups, fallbacks, strategy order and breaker state) and its
  ``HealthBoard`` told of every attempt's start, end and success;
- the overall deadline (``asyncio.timeout``), upstream connect and read timeouts, retries with backoff on a
  retryable status, and non-2xx answers translated by modelyard's own ``translate_error``;
- the disconnect watch (a task that cancels the request when the client leaves), as modelyard's ``DisconnectWatch``;
- the ``X-Request-ID`` sent upstream, an attempt record per attempt, the cost from modelyard's ``PriceCatalog``;
- every response header modelyard sends (request id, provider, model, retries, fallbacks, cost, overhead);
- Prometheus: requests, latency, TTFT, tokens, cost, in flight;
- the row: the floor's, with attempts, TTFT, tokens per second and tags.

Caching, budgets, per-deployment RPM/TPM limits and saved conversations are off by default in modelyard, so here,
as there, each is one settings check. It is not a product: errors are answered plainly and a stream's failure
after its first byte is not reported in the OpenAI shape. ``instructions.py --served --targets relay,lean-full``
and ``run_overhead.py --targets relay,lean-full,...`` measure it.

Run: .venv/bin/python benchmarks/lean_full.py --port 9203 --upstream http://127.0.0.1:9100/v1 --db /tmp/lean.db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import aiohttp
import orjson
import uvicorn
from lean_floor import LeanGateway, Metrics, migrate
from prometheus_client import Counter, Gauge, Histogram

from modelyard import errors
from modelyard.config import load_settings
from modelyard.errors import openai_error_parser
from modelyard.pipeline import new_request_id
from modelyard.pricing.catalog import PriceCatalog
from modelyard.providers._http import translate_error
from modelyard.retry import backoff, should_retry
from modelyard.routing.attempts import Deadline
from modelyard.routing.rollout import RouteContext
from modelyard.server.http import GATEWAY_FIELDS, DisconnectWatch
from modelyard.types.chat import ChatRequest
from modelyard.types.usage import Usage

Scope = dict[str, Any]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class FullMetrics(Metrics):
    """The floor's counters plus what modelyard's ``/metrics`` also counts on every request."""

    def __init__(self) -> None:
        super().__init__()
        self.ttft = Histogram("ttft_seconds", "ttft", ["model"], registry=self.registry)
        self.tokens = Counter("tokens", "tokens", ["model", "kind"], registry=self.registry)
        self.cost = Counter("cost", "cost", ["model"], registry=self.registry)
        self.in_flight = Gauge("in_flight", "in flight", registry=self.registry)


class Refused(Exception):
    """An answer given before the upstream is called (host, size, concurrency)."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class FullGateway(LeanGateway):
    """``LeanGateway`` with every per-request duty of modelyard's default configuration (see the module's text)."""

    def __init__(self, upstream: str, db: str) -> None:
        super().__init__(upstream, db)
        self.settings = load_settings()
        # The routing table and breaker as modelyard builds them from the same settings (provider ``up``).
        from modelyard.gateway import Gateway

        holder = Gateway(self.settings)
        self.router, self.health, self.specs = holder.router, holder.health, holder.specs
        free = [name for name, spec in self.specs.items() if not spec.requires_key]
        self.catalog = PriceCatalog(self.settings.prices, free_providers=free)
        self.metrics = FullMetrics()
        self.in_flight = 0
        self.base_urls = {name: (spec.base_url or "").rstrip("/") for name, spec in self.specs.items()}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        server = self.settings.server
        try:
            host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
            if host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
                raise Refused(403, "host not allowed")
            if self.in_flight >= server.max_concurrency:
                raise Refused(503, "over the concurrency limit", [(b"retry-after", b"1")])
            self.in_flight += 1
            self.metrics.in_flight.inc()
            try:
                await self.handle(scope, receive, send)
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
        except Refused as refused:
            out = orjson.dumps({"error": {"message": str(refused), "type": "invalid_request_error"}})
            headers = [(b"content-type", b"application/json"), *refused.headers]
            await send({"type": "http.response.start", "status": refused.status, "headers": headers})
            await send({"type": "http.response.body", "body": out})

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        started, created = time.monotonic(), time.time()
        limit = self.settings.server.max_body_bytes
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > limit:
                raise Refused(413, "request body too large")
            more = message.get("more_body", False)
        data = orjson.loads(body)
        extra = {name: data.pop(name) for name in GATEWAY_FIELDS if name in data}
        own_headers = {k: v for k, v in scope["headers"] if k.startswith(b"x-modelyard-")}
        tags = extra.get("tags") or [t for t in own_headers.get(b"x-modelyard-tags", b"").decode().split(",") if t]
        chat = ChatRequest.model_validate(data)
        request_id = new_request_id()
        context = RouteContext(key="local", request_id=request_id, tags=tuple(tags))
        deployment = self.router.plan(chat.model, extra.get("fallbacks"), context)[0]
        provider, _, served = deployment.model.partition("/")
        data["model"] = served
        deadline = Deadline(extra.get("timeout") or self.settings.timeout, started)
        watch = DisconnectWatch(receive)
        attempts: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(deadline.remaining()):
                result = await self.attempts(chat, data, deployment.id, provider, request_id, attempts, send, started)
        finally:
            watch.stop()
        text, usage, finish, response, ttft, cost = result
        latency = time.monotonic() - started
        self.count(chat.model, latency, ttft, usage, cost)
        if self.log_requests:
            extra = self.row_extra(cost, usage, attempts, ttft, latency, tags)
            self.log(chat, data, response, text, usage, finish, request_id, provider, created, latency, extra)

    async def attempts(
        self,
        chat: ChatRequest,
        data: dict[str, Any],
        deployment_id: str,
        provider: str,
        request_id: str,
        attempts: list[dict[str, Any]],
        send: Any,
        started: float,
    ) -> tuple[str, dict[str, Any] | None, str | None, dict[str, Any] | None, float | None, float | None]:
        retries, http = 0, self.settings.http
        timeout = aiohttp.ClientTimeout(
            sock_connect=http.connect_timeout, sock_read=None if chat.stream else http.read_timeout
        )
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        url = f"{self.base_urls[provider]}/chat/completions"
        payload = orjson.dumps(data)
        assert self.session is not None
        while True:
            self.health.started(deployment_id)
            begun = time.monotonic()
            try:
                async with self.session.post(url, data=payload, headers=headers, timeout=timeout) as upstream:
                    if upstream.status >= 300:
                        raise await translate_error(upstream, provider, chat.model, openai_error_parser)
                    if chat.stream:
                        text, usage, finish, ttft = await self.stream_full(
                            upstream, send, chat, request_id, provider, started, retries
                        )
                        response, cost = None, self.cost_of(deployment_id, usage)
                    else:
                        response = orjson.loads(await upstream.read())
                        choice = response["choices"][0]
                        text, usage, finish = (
                            choice["message"].get("content") or "",
                            response["usage"],
                            choice["finish_reason"],
                        )
                        ttft = None
                        cost = self.cost_of(deployment_id, usage)
                        response["model"] = chat.model
                        out = orjson.dumps(response)
                        head = self.full_headers(request_id, provider, cost, started, retries, chat.model)
                        head += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
                        await send({"type": "http.response.start", "status": 200, "headers": head})
                        await send({"type": "http.response.body", "body": out})
            except (errors.ModelyardError, aiohttp.ClientError) as failure:
                exc = failure if isinstance(failure, errors.ModelyardError) else errors.ConnectionError(str(failure))
                self.health.finished(deployment_id)
                self.health.failure(deployment_id, exc)
                attempts.append({"model": deployment_id, "provider": provider, "status": exc.status_code})
                if not should_retry(exc, retries, self.settings.max_retries, self.settings.max_retry_after):
                    raise
                await asyncio.sleep(backoff(retries, exc.retry_after, self.settings.max_retry_after))
                retries += 1
                continue
            self.health.finished(deployment_id)
            latency = time.monotonic() - begun
            self.health.success(deployment_id, latency)
            attempts.append(
                {"model": deployment_id, "provider": provider, "status": 200, "latency_ms": round(latency * 1000, 2)}
            )
            return text, usage, finish, response, ttft, cost

    def cost_of(self, model: str, usage: dict[str, Any] | None) -> float | None:
        if not usage:
            return None
        charge = self.catalog.charge(model, Usage.of(usage["prompt_tokens"], usage["completion_tokens"]))
        return charge.total if charge.known else None

    def full_headers(
        self, request_id: str, provider: str, cost: float | None, started: float, retries: int, model: str
    ) -> list[tuple[bytes, bytes]]:
        headers = self.headers(request_id, provider, cost, started)
        headers += [
            (b"x-modelyard-model", model.encode()),
            (b"x-modelyard-retries", str(retries).encode()),
            (b"x-modelyard-fallbacks", b"0"),
        ]
        return headers

    async def stream_full(
        self,
        upstream: aiohttp.ClientResponse,
        send: Any,
        chat: ChatRequest,
        request_id: str,
        provider: str,
        started: float,
        retries: int,
    ) -> tuple[str, dict[str, Any] | None, str | None, float | None]:
        headers = [
            (b"content-type", b"text/event-stream"),
            *self.full_headers(request_id, provider, None, started, retries, chat.model),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        ttft: float | None = None
        read_timeout = self.settings.http.read_timeout
        content = upstream.content
        while True:
            async with asyncio.timeout(read_timeout):
                raw = await content.readany()
            if not raw:
                break
            frames: list[bytes] = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data: {"):
                    chunk = orjson.loads(line[6:])
                    for choice in chunk.get("choices") or ():
                        if ttft is None:
                            ttft = time.monotonic() - started
                        parts.append(choice["delta"].get("content") or "")
                        finish = choice.get("finish_reason") or finish
                    usage = chunk.get("usage") or usage
                    chunk["model"] = chat.model
                    frames += (b"data: ", orjson.dumps(chunk), b"\n\n")
                elif line.startswith(b"data: [DONE]"):
                    frames.append(b"data: [DONE]\n\n")
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return "".join(parts), usage, finish, ttft

    def count(
        self, model: str, latency: float, ttft: float | None, usage: dict[str, Any] | None, cost: float | None
    ) -> None:
        m = self.metrics
        m.requests.labels(model, "ok").inc()
        m.latency.labels(model).observe(latency)
        if ttft is not None:
            m.ttft.labels(model).observe(ttft)
        if usage:
            m.tokens.labels(model, "prompt").inc(usage["prompt_tokens"])
            m.tokens.labels(model, "completion").inc(usage["completion_tokens"])
        if cost:
            m.cost.labels(model).inc(cost)

    def row_extra(
        self,
        cost: float | None,
        usage: dict[str, Any] | None,
        attempts: list[dict[str, Any]],
        ttft: float | None,
        latency: float,
        tags: list[str],
    ) -> dict[str, Any]:
        """The columns the floor's row leaves empty."""
        completion = usage["completion_tokens"] if usage else None
        generation = latency - (ttft or 0)
        return {
            "cost": cost,
            "cost_source": "computed" if cost is not None else "none",
            "attempts": orjson.dumps(attempts).decode(),
            "ttft_ms": round(ttft * 1000, 3) if ttft is not None else None,
            "tokens_per_second": round(completion / generation, 2) if completion and generation > 0 else None,
            "tags": orjson.dumps(list(dict.fromkeys(tags))).decode(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9203)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    os.environ.setdefault("MODELYARD_PROVIDERS__UP__BASE_URL", args.upstream)
    migrate(args.db)
    uvicorn.run(
        FullGateway(args.upstream, args.db),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
