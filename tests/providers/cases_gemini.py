"""Contract cases for the Gemini adapter, replayed from the fixtures in ``fixtures/gemini``.

The fixtures follow the documented ``generateContent`` / ``streamGenerateContent?alt=sse`` wire format
(scrubbed ids and signatures). Google frames SSE events with CRLF, so ``load_sse`` does too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from modelyard import errors
from tests.providers.contract import ProviderCases
from tests.support.scripted_server import Reply

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
MODEL = "gemini-2.5-flash"


def load_json(name: str) -> Any:
    """A JSON fixture, parsed."""
    return orjson.loads((FIXTURES / name).read_bytes())


def load_sse(name: str) -> list[bytes]:
    """An SSE fixture as one item per event, framed the way Google frames them (CRLF)."""
    blocks = [block.strip("\n") for block in (FIXTURES / name).read_text().split("\n\n") if block.strip()]
    return [block.replace("\n", "\r\n").encode() + b"\r\n\r\n" for block in blocks]


def error_reply(name: str) -> Reply:
    """An error fixture answered with the HTTP status its envelope names."""
    body = load_json(f"errors/{name}.json")
    return Reply(status=body["error"]["code"], json=body)


CASES = ProviderCases(
    provider="gemini",
    model=MODEL,
    base_url_suffix="/v1beta",
    plain=Reply(json=load_json("generate_content.json")),
    stream=Reply(sse=load_sse("stream.sse")),
    tool_call=Reply(json=load_json("tool_call.json")),
    tool_call_stream=Reply(sse=load_sse("tool_call_stream.sse")),
    truncated_stream=Reply(sse=load_sse("truncated_stream.sse")),
    errors={
        errors.BadRequestError: error_reply("400_invalid_argument"),
        errors.AuthenticationError: error_reply("400_api_key_invalid"),
        errors.PermissionDeniedError: error_reply("403_permission_denied"),
        errors.NotFoundError: error_reply("404_not_found"),
        errors.RateLimitError: error_reply("429_resource_exhausted"),
        errors.ProviderError: error_reply("500_internal"),
        errors.ServiceUnavailableError: error_reply("503_unavailable"),
        errors.TimeoutError: error_reply("504_deadline_exceeded"),
    },
)
