"""The public names of ``import modelyard`` are exactly these, and each one resolves."""

from __future__ import annotations

import modelyard

EXPECTED = {
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
}


def test_all_is_the_documented_surface() -> None:
    assert set(modelyard.__all__) == EXPECTED


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in modelyard.__all__:
        value = getattr(modelyard, name)
        if name != "__version__" and callable(value):
            assert value.__doc__, f"{name} has no docstring"
