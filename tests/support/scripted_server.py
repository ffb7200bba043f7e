"""A real HTTP server on 127.0.0.1 that answers from a script and records what it was sent.

Each scripted reply is consumed in order (the last one repeats). A reply can be JSON, raw bytes, an SSE stream
(optionally cut after N events, or closed cleanly without finishing), or a stall.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[bytes] | None = None  # each item is one full SSE event, e.g. b'data: {...}\n\n'
    cut_after: int | None = None  # abort the connection after this many SSE events
    chunk_delay: float = 0.0
    delay: float = 0.0  # wait before answering (a stall when long)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def sse_json(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


class ScriptedServer:
    """Start with ``await server.start()``; ``server.url`` is its base URL."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        self.disconnects: list[float] = []  # monotonic times at which a client went away mid-reply
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *replies: Reply) -> ScriptedServer:
        self.replies = list(replies)
        return self

    async def start(self) -> ScriptedServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next(self) -> Reply:
        if not self.replies:
            return Reply(status=500, json={"error": {"message": "no reply scripted"}})
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    async def _wait(self, request: web.Request, seconds: float) -> bool:
        """Sleep, watching the connection: False (and the time recorded) when the client goes away."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if request.transport is None or request.transport.is_closing():
                self.disconnects.append(time.monotonic())
                return False
            await asyncio.sleep(min(0.02, max(0.0, end - time.monotonic())))
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        reply = self._next()
        if reply.delay and not await self._wait(request, reply.delay):
            return web.Response(status=499)
        if reply.sse is None:
            data = reply.body if reply.body is not None else orjson.dumps(reply.json)
            headers = {"Content-Type": "application/json", **reply.headers}
            return web.Response(status=reply.status, body=data, headers=headers)
        response = web.StreamResponse(
            status=reply.status, headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        for i, event in enumerate(reply.sse):
            if reply.cut_after is not None and i >= reply.cut_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            try:
                await response.write(event)
            except ConnectionError:
                self.disconnects.append(time.monotonic())
                return response
            if reply.chunk_delay and not await self._wait(request, reply.chunk_delay):
                return response
        await response.write_eof()
        return response
