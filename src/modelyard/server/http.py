"""Small request/response helpers shared by the routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from modelyard import errors
from modelyard.pipeline import CallOptions
from modelyard.types.chat import ModelyardInfo

T = TypeVar("T")

# Request-body fields modelyard reads itself (not sent upstream).
GATEWAY_FIELDS = ("fallbacks", "tags", "conversation_id", "timeout", "max_retries")
CACHE_HEADER = "x-modelyard-cache"
CONVERSATION_HEADER = "x-modelyard-conversation-id"


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body, or a 400 naming the problem."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequestError(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise errors.BadRequestError("request body must be a JSON object", code="invalid_json")
    return data


def call_options(request: Request, body: dict[str, Any]) -> CallOptions:
    """Per-call options from gateway-only body fields and ``x-modelyard-*`` headers (removed from ``body``)."""
    extra = {name: body.pop(name) for name in GATEWAY_FIELDS if name in body}
    headers = modelyard_headers(request)
    tags = extra.get("tags") or [t.strip() for t in headers.get("x-modelyard-tags", "").split(",") if t.strip()]
    fallbacks = extra.get("fallbacks")
    if fallbacks is not None and not (isinstance(fallbacks, list) and all(isinstance(f, str) for f in fallbacks)):
        raise errors.BadRequestError("fallbacks must be a list of model names", param="fallbacks")
    timeout = extra.get("timeout")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise errors.BadRequestError("timeout must be a positive number of seconds", param="timeout")
    retries = extra.get("max_retries")
    if retries is not None and not (isinstance(retries, int) and 0 <= retries <= 10):
        raise errors.BadRequestError("max_retries must be an integer from 0 to 10", param="max_retries")
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise errors.BadRequestError("tags must be a list of strings", param="tags")
    conversation_id = _conversation_id(request, extra.get("conversation_id") or headers.get(CONVERSATION_HEADER))
    return CallOptions(
        timeout=float(timeout) if timeout is not None else None,
        max_retries=retries,
        fallbacks=fallbacks,
        tags=list(tags),
        caller=getattr(request.state, "caller", "local"),
        conversation_id=conversation_id,
        metadata=dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {},
        # Per-request cache control, read (and never sent upstream) by the gateway's cache middleware.
        extra_headers={CACHE_HEADER: headers[CACHE_HEADER]} if CACHE_HEADER in headers else {},
    )


def modelyard_headers(request: Request) -> dict[str, str]:
    """The request's ``x-modelyard-*`` headers (the first of each name), read from the raw ASGI headers in one pass."""
    found: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        if name.startswith(b"x-modelyard-"):
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _conversation_id(request: Request, value: Any) -> str | None:
    """A saved conversation to continue; conversations belong to the admin, so virtual keys may not use them."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.BadRequestError("conversation_id must be a string", param="conversation_id")
    if getattr(request.state, "key", None) is not None:
        raise errors.PermissionDeniedError("saved conversations need the master key", param="conversation_id")
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def info_headers(info: ModelyardInfo | None, started: float) -> dict[str, str]:
    """What modelyard did for this request, in response headers."""
    if info is None:
        return {}
    headers = {"x-request-id": info.request_id}
    if info.provider:
        headers["x-modelyard-provider"] = info.provider
    if info.served_model:
        headers["x-modelyard-model"] = info.served_model
    headers["x-modelyard-retries"] = str(info.retries)
    headers["x-modelyard-fallbacks"] = str(info.fallbacks)
    if info.cost is not None:
        headers["x-modelyard-cost"] = f"{info.cost:.10f}".rstrip("0").rstrip(".") or "0"
    upstream_ms = sum(a.latency_ms or 0 for a in info.attempts)
    headers["x-modelyard-overhead-ms"] = f"{max(0.0, (time.monotonic() - started) * 1000 - upstream_ms):.3f}"
    if info.cache_hit:
        headers["x-modelyard-cache"] = "hit"
    return headers


class DisconnectWatch:
    """From its creation until ``stop``, cancels the request's task as soon as the client disconnects, so the
    upstream call stops at once. One watch serves a stream's opening and then its response (``watched``)."""

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.disconnected = False
        self._watcher: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        self.task.cancel()

    def stop(self) -> None:
        # Let go of the task: it (through its coroutine, and once cancelled its traceback) refers to this watch, and
        # the cycle kept each finished request's objects alive until a garbage collection (+4 MB peak RSS at c=64).
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (so the upstream call stops at once)."""
    watch = DisconnectWatch(request.receive)
    try:
        return await work
    finally:
        watch.stop()


async def watched(request: Request, work: Awaitable[T]) -> tuple[T, DisconnectWatch]:
    """``cancel_on_disconnect`` whose watch goes on after ``work``: hand it to the response that streams the result
    (one watcher task for the whole request instead of one for the call and one for the response)."""
    watch = DisconnectWatch(request.receive)
    try:
        return await work, watch
    except BaseException:
        watch.stop()
        raise
