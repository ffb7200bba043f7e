"""The legacy ``/v1/completions`` route, translated to chat for chat-only models."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions
from modelyard.server.sse import ChunkEncoder
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, Choice, Message
from modelyard.types.validation import parse_model

_SHARED = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "user",
    "metadata",
)
_UNSUPPORTED = ("suffix", "echo", "best_of")


def to_chat(body: dict[str, Any]) -> tuple[ChatRequest, list[str]]:
    """(chat request for the first prompt, every prompt). Several prompts run as separate calls."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise errors.BadRequestError("prompt must be a string or a non-empty list of strings", param="prompt")
    for name in _UNSUPPORTED:
        if body.get(name) not in (None, False, 1, ""):
            raise errors.UnsupportedParameterError(f"{name} is not supported on chat models", param=name)
    if body.get("logprobs") is not None:
        raise errors.UnsupportedParameterError("logprobs is not supported on /v1/completions", param="logprobs")
    if len(prompts) > 1 and body.get("stream"):
        raise errors.BadRequestError("stream supports a single prompt", param="prompt")
    chat = {k: body[k] for k in _SHARED if k in body}
    chat["messages"] = [{"role": "user", "content": prompts[0]}]
    return parse_model(ChatRequest, chat), prompts


async def run(gateway: Gateway, chat: ChatRequest, prompts: list[str], options: CallOptions) -> ChatResponse:
    """One chat call per prompt; choices are numbered like OpenAI's (prompt-major)."""
    requests = [chat.model_copy(update={"messages": [Message(role="user", content=p)]}) for p in prompts]
    results = await asyncio.gather(*(gateway.chat(r, options) for r in requests))
    first = results[0]
    choices: list[Choice] = []
    for result in results:
        for choice in result.choices:
            choices.append(choice.model_copy(update={"index": len(choices)}))
    prompt_tokens = sum(r.usage.prompt_tokens for r in results if r.usage)
    completion_tokens = sum(r.usage.completion_tokens for r in results if r.usage)
    usage = (
        first.usage.model_copy(
            update={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        )
        if first.usage
        else None
    )
    return first.model_copy(update={"choices": choices, "usage": usage})


def to_text_completion(response: ChatResponse, model: str) -> dict[str, Any]:
    return {
        "id": response.id.replace("chatcmpl-", "cmpl-", 1),
        "object": "text_completion",
        "created": response.created,
        "model": model,
        "system_fingerprint": response.system_fingerprint,
        "choices": [
            {"text": c.message.text(), "index": c.index, "logprobs": None, "finish_reason": c.finish_reason or "stop"}
            for c in response.choices
        ],
        "usage": response.usage.model_dump(exclude_none=True) if response.usage else None,
    }


def chunk_bytes(include_usage: bool, model: str) -> ChunkEncoder:
    def encode(chunk: ChatChunk) -> bytes | None:
        if chunk.usage is not None and not chunk.choices and not include_usage:
            return None
        data = {
            "id": chunk.id.replace("chatcmpl-", "cmpl-", 1),
            "object": "text_completion",
            "created": chunk.created or int(time.time()),
            "model": model,
            "choices": [
                {"text": c.delta.content or "", "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
                for c in chunk.choices
            ],
        }
        if chunk.usage is not None:
            data["usage"] = chunk.usage.model_dump(exclude_none=True)
        return b"data: " + orjson.dumps(data) + b"\n\n"

    return encode
