"""modelyard: one chat API, gateway and workbench over every LLM provider and a local model.

Heavy parts load lazily: ``import modelyard`` makes no network call and imports no provider or llama.cpp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AsyncClient": "modelyard.sdk.client",
    "Client": "modelyard.sdk.sync",
    "Gateway": "modelyard.gateway",
    "Settings": "modelyard.config",
    "load_settings": "modelyard.config",
    "CallOptions": "modelyard.pipeline",
    "Call": "modelyard.pipeline",
    "ChatStream": "modelyard.pipeline",
    "Middleware": "modelyard.pipeline",
    "ChatRequest": "modelyard.types",
    "ChatResponse": "modelyard.types",
    "ChatChunk": "modelyard.types",
    "Message": "modelyard.types",
    "Tool": "modelyard.types",
    "ToolCall": "modelyard.types",
    "Usage": "modelyard.types",
    "EmbeddingRequest": "modelyard.types",
    "EmbeddingResponse": "modelyard.types",
    "ModelInfo": "modelyard.types",
    "ChunkAccumulator": "modelyard.streaming",
    "estimate_tokens": "modelyard.tokens",
    "FakeReply": "modelyard.providers.fake",
    "ModelyardError": "modelyard.errors",
    "ConfigError": "modelyard.errors",
    "BadRequestError": "modelyard.errors",
    "AuthenticationError": "modelyard.errors",
    "PermissionDeniedError": "modelyard.errors",
    "NotFoundError": "modelyard.errors",
    "RateLimitError": "modelyard.errors",
    "BudgetExceededError": "modelyard.errors",
    "ContextWindowExceededError": "modelyard.errors",
    "ContentPolicyError": "modelyard.errors",
    "TimeoutError": "modelyard.errors",
    "ConnectionError": "modelyard.errors",
    "ProviderError": "modelyard.errors",
    "ServiceUnavailableError": "modelyard.errors",
    "StreamInterruptedError": "modelyard.errors",
    "UnsupportedOperationError": "modelyard.errors",
    "UnsupportedParameterError": "modelyard.errors",
}

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Call",
    "CallOptions",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChunkAccumulator",
    "Client",
    "ConfigError",
    "ConnectionError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FakeReply",
    "Gateway",
    "Message",
    "Middleware",
    "ModelInfo",
    "ModelyardError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Settings",
    "StreamInterruptedError",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "UnsupportedOperationError",
    "UnsupportedParameterError",
    "Usage",
    "__version__",
    "estimate_tokens",
    "load_settings",
]


__getattr__ = lazy_exports(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from modelyard.config import Settings, load_settings
    from modelyard.errors import (
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        ConfigError,
        ConnectionError,
        ContentPolicyError,
        ContextWindowExceededError,
        ModelyardError,
        NotFoundError,
        PermissionDeniedError,
        ProviderError,
        RateLimitError,
        ServiceUnavailableError,
        StreamInterruptedError,
        TimeoutError,
        UnsupportedOperationError,
        UnsupportedParameterError,
    )
    from modelyard.gateway import Gateway
    from modelyard.pipeline import Call, CallOptions, ChatStream, Middleware
    from modelyard.providers.fake import FakeReply
    from modelyard.sdk.client import AsyncClient
    from modelyard.sdk.sync import Client
    from modelyard.streaming import ChunkAccumulator
    from modelyard.tokens import estimate_tokens
    from modelyard.types import (
        ChatChunk,
        ChatRequest,
        ChatResponse,
        EmbeddingRequest,
        EmbeddingResponse,
        Message,
        ModelInfo,
        Tool,
        ToolCall,
        Usage,
    )
