"""Edge limits as ASGI middleware: request body size (enforced while reading) and in-flight concurrency."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard import errors
from modelyard.server.errors import error_response


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: by Content-Length at once, or while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope["headers"])
        if length is not None and length > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if length is not None:  # the HTTP server reads exactly Content-Length bytes of body: nothing to count
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = errors.RequestTooLargeError(f"request body is larger than {self.max_bytes} bytes")
        response = error_response(exc)
        response.headers["connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length, when the request has a valid one (a body sent chunked has none)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class ConcurrencyLimitMiddleware:
    """503 with ``Retry-After`` once ``limit`` requests are in flight (health checks exempt)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/health", "/ready"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            exc = errors.ServiceUnavailableError("the gateway is at its concurrency limit", retry_after=1)
            await error_response(exc)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
