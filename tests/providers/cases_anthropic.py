"""Anthropic Messages API fixtures for the provider contract (recorded, scrubbed, documented wire format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelyard import errors
from tests.providers.contract import ProviderCases
from tests.support.scripted_server import Reply

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
MODEL = "claude-sonnet-4-5"


def load_json(name: str) -> Any:
    """A recorded JSON body."""
    return json.loads((FIXTURES / name).read_text())


def load_sse(name: str) -> list[bytes]:
    """A recorded SSE stream, one item per event (each ending in its blank line)."""
    text = (FIXTURES / name).read_text()
    return [event.encode() + b"\n\n" for event in text.split("\n\n") if event.strip()]


def error_reply(status: int) -> Reply:
    """The recorded error body for ``status``."""
    body = load_json("errors.json")[str(status)]
    return Reply(status=status, json=body, headers={"request-id": "req_test"})


CASES = ProviderCases(
    provider="anthropic",
    model=MODEL,
    plain=Reply(json=load_json("plain.json")),
    stream=Reply(sse=load_sse("stream.sse")),
    tool_call=Reply(json=load_json("tool_call.json")),
    tool_call_stream=Reply(sse=load_sse("tool_call_stream.sse")),
    truncated_stream=Reply(sse=load_sse("truncated_stream.sse")),
    errors={
        errors.BadRequestError: error_reply(400),
        errors.AuthenticationError: error_reply(401),
        errors.BudgetExceededError: error_reply(402),
        errors.PermissionDeniedError: error_reply(403),
        errors.NotFoundError: error_reply(404),
        errors.RequestTooLargeError: error_reply(413),
        errors.RateLimitError: error_reply(429),
        errors.ProviderError: error_reply(500),
        errors.TimeoutError: error_reply(504),
        errors.ServiceUnavailableError: error_reply(529),
    },
)
