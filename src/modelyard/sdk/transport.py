"""How the SDK reaches a gateway: in-process, or over HTTP to a modelyard server (``base_url``).

Stored state (logs, conversations, templates, keys) goes through the admin facade (``sdk/admin.py``) instead.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelyard.config import Settings
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.types.chat import ChatRequest, ChatResponse
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo


class Transport(Protocol):
    async def chat(self, request: ChatRequest, options: CallOptions) -> ChatResponse: ...

    async def stream(self, request: ChatRequest, options: CallOptions) -> ChatStream: ...

    async def embed(self, request: EmbeddingRequest, options: CallOptions) -> EmbeddingResponse: ...

    async def models(self) -> list[ModelInfo]: ...

    async def aclose(self) -> None: ...


class InProcessTransport:
    """Runs a ``Gateway`` in this process (built lazily so ``Client()`` stays cheap)."""

    def __init__(self, settings: Settings | None, gateway: Any = None) -> None:
        self._settings = settings
        self._gateway = gateway

    @property
    def gateway(self) -> Any:
        if self._gateway is None:
            from modelyard.gateway import Gateway

            self._gateway = Gateway(self._settings)
        return self._gateway

    async def chat(self, request: ChatRequest, options: CallOptions) -> ChatResponse:
        response: ChatResponse = await self.gateway.chat(request, options)
        return response

    async def stream(self, request: ChatRequest, options: CallOptions) -> ChatStream:
        stream: ChatStream = await self.gateway.stream(request, options)
        return stream

    async def embed(self, request: EmbeddingRequest, options: CallOptions) -> EmbeddingResponse:
        response: EmbeddingResponse = await self.gateway.embed(request, options)
        return response

    async def models(self) -> list[ModelInfo]:
        models: list[ModelInfo] = await self.gateway.models()
        return models

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()
