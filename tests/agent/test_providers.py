"""The same run over the OpenAI, Anthropic and Gemini wire formats (a scripted upstream on 127.0.0.1):
tool calls are read and tool results sent back in each provider's own shape, and the loop does not care."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from modelyard.agent import arun
from modelyard.config import ProviderSettings, Settings
from modelyard.sdk.client import AsyncClient
from tests.agent import sample_tools
from tests.support.scripted_server import Reply, ScriptedServer

ARGS = {"a": 20, "b": 22}


def openai(text: str | None, call: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call:
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 20, "b": 22}'}}
        ]
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    finish = "tool_calls" if call else "stop"
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}  # fmt: skip


def anthropic(text: str | None, call: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if call:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "add", "input": ARGS})
    usage = {"input_tokens": 10, "output_tokens": 5}
    stop = "tool_use" if call else "end_turn"
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": content,
            "stop_reason": stop, "usage": usage}  # fmt: skip


def gemini(text: str | None, call: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    if call:
        parts.append({"functionCall": {"name": "add", "args": ARGS}})
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": usage}  # fmt: skip


CASES = {
    "openai": ("openai/gpt-4o-mini", "", openai),
    "anthropic": ("anthropic/claude-haiku-4-5", "", anthropic),
    "gemini": ("gemini/gemini-2.5-flash", "/v1beta", gemini),
}


def tool_result_sent(provider: str, body: dict[str, Any]) -> Any:
    """Where each wire format carries the tool's result in the second request."""
    if provider == "openai":
        return body["messages"][-1]["content"]
    if provider == "anthropic":
        [block] = [b for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]
        return block["content"] if isinstance(block["content"], str) else block["content"][0]["text"]
    [part] = [p for p in body["contents"][-1]["parts"] if "functionResponse" in p]
    return part["functionResponse"]["response"]


@pytest.mark.parametrize("provider", list(CASES))
async def test_one_loop_every_wire_format(provider: str, upstream: ScriptedServer, tmp_path: pathlib.Path) -> None:
    model, suffix, reply = CASES[provider]
    upstream.script(Reply(json=reply(None, True)), Reply(json=reply("It is 42.", False)))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        providers={provider: ProviderSettings(base_url=upstream.url + suffix, api_key="test-key")},
    )
    async with AsyncClient(settings) as client:
        result = await arun(client, model, "What is 20 + 22?", tools=[sample_tools.add])
    assert result.stop_reason == "final_answer" and result.text == "It is 42."
    assert [(c.name, c.parsed, c.output) for c in result.tool_calls] == [("add", ARGS, "42")]
    assert result.usage.total_tokens == 30 and len(upstream.requests) == 2
    assert "42" in str(tool_result_sent(provider, upstream.requests[1].body))
