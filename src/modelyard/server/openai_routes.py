"""``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``: parse, call, render."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard import errors
from modelyard.config import ServerSettings
from modelyard.gateway import Gateway
from modelyard.server import completions
from modelyard.server.auth import authorize_model
from modelyard.server.http import call_options, cancel_on_disconnect, info_headers, json_response, read_json, watched
from modelyard.server.responses import EventStreamResponse
from modelyard.server.sse import openai_chunk_bytes, sse_body
from modelyard.types.chat import ChatRequest, ChatResponse
from modelyard.types.embeddings import EmbeddingRequest
from modelyard.types.models import ModelInfo
from modelyard.types.validation import parse_model


def chat_response_body(response: ChatResponse, model: str) -> dict[str, Any]:
    """The exact OpenAI ``chat.completion`` object (required keys present even when null)."""
    data = response.model_dump(exclude_none=True, exclude={"modelyard"})
    data["model"] = model
    data.setdefault("system_fingerprint", None)
    for choice in data["choices"]:
        choice.setdefault("logprobs", None)
        choice.setdefault("finish_reason", "stop")
        choice["message"].setdefault("content", None)
        choice["message"].setdefault("refusal", None)
    return data


def model_body(info: ModelInfo) -> dict[str, Any]:
    return info.model_dump(exclude_none=True)


class OpenAIRoutes:
    """Route handlers over one ``Gateway``; no business logic beyond translating the wire format."""

    def __init__(self, gateway: Gateway, limits: ServerSettings) -> None:
        self.gateway = gateway
        self.limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        started = time.monotonic()
        body = await read_json(request)
        options = call_options(request, body)
        chat = parse_model(ChatRequest, body)
        authorize_model(request, chat.model)
        if not chat.stream:
            response = await cancel_on_disconnect(request, self.gateway.chat(chat, options))
            return json_response(
                chat_response_body(response, chat.model), headers=info_headers(response.modelyard, started)
            )
        stream, watch = await watched(request, self.gateway.stream(chat, options))
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        frames = sse_body(
            stream,
            openai_chunk_bytes(include_usage, chat.model, stream.info),
            first_token_timeout=self.limits.first_token_timeout,
            idle_timeout=self.limits.stream_idle_timeout,
        )
        return EventStreamResponse(frames, headers=info_headers(stream.info, started), watch=watch)

    async def completions(self, request: Request) -> Response:
        started = time.monotonic()
        body = await read_json(request)
        options = call_options(request, body)
        chat, prompts = completions.to_chat(body)
        authorize_model(request, chat.model)
        if not chat.stream:
            response = await cancel_on_disconnect(request, completions.run(self.gateway, chat, prompts, options))
            return json_response(
                completions.to_text_completion(response, chat.model), headers=info_headers(response.modelyard, started)
            )
        stream, watch = await watched(request, self.gateway.stream(chat, options))
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        frames = sse_body(
            stream,
            completions.chunk_bytes(include_usage, chat.model),
            first_token_timeout=self.limits.first_token_timeout,
            idle_timeout=self.limits.stream_idle_timeout,
        )
        return EventStreamResponse(frames, headers=info_headers(stream.info, started), watch=watch)

    async def embeddings(self, request: Request) -> Response:
        started = time.monotonic()
        body = await read_json(request)
        options = call_options(request, body)
        embed = parse_model(EmbeddingRequest, body)
        authorize_model(request, embed.model)
        response = await cancel_on_disconnect(request, self.gateway.embed(embed, options))
        data = response.model_dump(exclude_none=True, exclude={"modelyard"})
        data["model"] = embed.model
        return json_response(data, headers=info_headers(response.modelyard, started))

    async def list_models(self, request: Request) -> Response:
        models = await self.gateway.models()
        return json_response({"object": "list", "data": [model_body(m) for m in models]})

    async def get_model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        info = await self.gateway.model(model_id)
        if info is not None:
            return json_response(model_body(info))
        raise errors.NotFoundError(
            f"The model `{model_id}` does not exist or you do not have access to it.", param="model"
        )


NOT_SERVED = (
    "/v1/audio",
    "/v1/images",
    "/v1/moderations",
    "/v1/files",
    "/v1/batches",
    "/v1/responses",
    "/v1/fine_tuning",
    "/v1/fine-tunes",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/uploads",
    "/v1/realtime",
    "/v1/evals",
    "/v1/containers",
    "/v1/conversations",
)


async def not_served(request: Request) -> Response:
    """Known OpenAI routes modelyard does not serve yet: 501 in the OpenAI error shape."""
    raise errors.NotImplementedByModelyardError(f"{request.url.path} is not implemented by modelyard yet")


def not_served_routes() -> list[Route]:
    routes = []
    for prefix in NOT_SERVED:
        routes.append(Route(prefix, not_served, methods=["GET", "POST", "DELETE"]))
        routes.append(Route(prefix + "/{rest:path}", not_served, methods=["GET", "POST", "DELETE"]))
    return routes
