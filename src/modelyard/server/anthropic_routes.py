"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic API in front of any model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors, tokens
from modelyard.config import ServerSettings
from modelyard.gateway import Gateway
from modelyard.pipeline import ChatStream
from modelyard.server import anthropic_wire as wire
from modelyard.server.auth import authorize_model
from modelyard.server.http import call_options, cancel_on_disconnect, info_headers, json_response, read_json, watched
from modelyard.server.responses import EventStreamResponse
from modelyard.server.sse import paced


def anthropic_error(exc: BaseException) -> Response:
    """Errors on these routes use Anthropic's shape, which the Anthropic SDK maps to its own exceptions."""
    if not isinstance(exc, errors.ModelyardError):
        exc = errors.ProviderError("internal server error", status=500)
    status, body = wire.anthropic_error_body(exc)
    headers = {"x-should-retry": "false"} if exc.upstream_attempts or not exc.is_retryable else {}
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


class AnthropicRoutes:
    def __init__(self, gateway: Gateway, limits: ServerSettings) -> None:
        self.gateway = gateway
        self.limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
        ]

    async def messages(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            body = await read_json(request)
            options = call_options(request, body)
            chat, stream = wire.anthropic_to_chat(body)
            authorize_model(request, chat.model)
            if not stream:
                response = await cancel_on_disconnect(request, self.gateway.chat(chat, options))
                return json_response(
                    wire.chat_to_anthropic(response, chat.model), headers=info_headers(response.modelyard, started)
                )
            events, watch = await watched(request, self.gateway.stream(chat, options))
        except errors.ModelyardError as exc:
            return anthropic_error(exc)
        frames = self._frames(events, chat.model)
        return EventStreamResponse(frames, headers=info_headers(events.info, started), watch=watch)

    async def _frames(self, stream: ChatStream, model: str) -> AsyncIterator[bytes]:
        encoder = wire.AnthropicStreamEncoder(model)
        try:
            for frame in encoder.start():
                yield frame
            async for chunk in paced(stream, self.limits.first_token_timeout, self.limits.stream_idle_timeout):
                for frame in encoder.feed(chunk):
                    yield frame
            for frame in encoder.finish():
                yield frame
        except errors.ModelyardError as exc:
            for frame in encoder.error(exc):
                yield frame
        finally:
            await stream.aclose()

    async def count_tokens(self, request: Request) -> Response:
        try:
            chat = wire.count_tokens_request(await read_json(request))
            authorize_model(request, chat.model)
        except errors.ModelyardError as exc:
            return anthropic_error(exc)
        model = self.gateway.router.resolve(chat.model)
        return json_response(
            wire.count_tokens_response(tokens.estimate_request_tokens(chat.model_copy(update={"model": model})))
        )
