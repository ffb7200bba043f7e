"""OpenAI wire-format fixtures (shapes as documented in the OpenAI API reference; ids scrubbed)."""

from __future__ import annotations

from typing import Any

from modelyard import errors
from tests.providers import contract
from tests.support.scripted_server import Reply, sse_json

MODEL = "gpt-4o-mini"
USAGE = {
    "prompt_tokens": contract.PROMPT_TOKENS,
    "completion_tokens": contract.COMPLETION_TOKENS,
    "total_tokens": contract.PROMPT_TOKENS + contract.COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scrubbed",
        "object": "chat.completion",
        "created": 1761000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_scrubbed",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": USAGE,
        "service_tier": "default",
    }


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return sse_json(
        {
            "id": "chatcmpl-scrubbed",
            "object": "chat.completion.chunk",
            "created": 1761000000,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_scrubbed",
            "choices": choices,
            "usage": usage,
        }
    )


DONE = b"data: [DONE]\n\n"
TOOL_CALL = {
    "id": "call_scrubbed",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}

STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}),
    chunk({"content": " there!"}),
    chunk({}, "stop"),
    chunk(None, usage=USAGE),
    DONE,
]
TOOL_STREAM = [
    chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_scrubbed",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
    chunk({}, "tool_calls"),
    chunk(None, usage=USAGE),
    DONE,
]


def error(status: int, kind: str, code: str | None, message: str = "scrubbed error") -> Reply:
    return Reply(status=status, json={"error": {"message": message, "type": kind, "param": None, "code": code}})


CASES = contract.ProviderCases(
    provider="openai",
    model=MODEL,
    plain=Reply(json=completion({"role": "assistant", "content": contract.TEXT, "refusal": None}, "stop")),
    stream=Reply(sse=STREAM),
    tool_call=Reply(json=completion({"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}, "tool_calls")),
    tool_call_stream=Reply(sse=TOOL_STREAM),
    truncated_stream=Reply(sse=STREAM[:3]),
    errors={
        errors.BadRequestError: error(400, "invalid_request_error", None),
        errors.ContextWindowExceededError: error(400, "invalid_request_error", "context_length_exceeded"),
        errors.AuthenticationError: error(401, "invalid_request_error", "invalid_api_key"),
        errors.PermissionDeniedError: error(403, "invalid_request_error", None),
        errors.NotFoundError: error(404, "invalid_request_error", "model_not_found"),
        errors.RateLimitError: error(429, "requests", "rate_limit_exceeded"),
        errors.BudgetExceededError: error(429, "insufficient_quota", "insufficient_quota"),
        errors.ProviderError: error(500, "server_error", None),
        errors.ServiceUnavailableError: error(503, "service_unavailable_error", "server_is_overloaded"),
    },
)
