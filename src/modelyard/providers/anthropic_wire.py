"""Translation between the OpenAI chat format and the Anthropic Messages API wire format.

Pure functions: ``request_body`` builds the ``POST /v1/messages`` body, ``chat_response`` reads its answer,
``usage_from`` does the token arithmetic, ``parse_error`` maps Anthropic's error envelope to the error tree.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard import errors
from modelyard.types.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    ContentPart,
    FunctionCall,
    Message,
    Tool,
    ToolCall,
)
from modelyard.types.usage import CompletionTokensDetails, PromptTokensDetails, Usage

DEFAULT_MAX_TOKENS = 4096
SIGNATURE_FIELD = "reasoning_signature"
"""Extra field on an assistant message (and stream delta) carrying the thinking block's signature."""

THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
PASSTHROUGH_EXTRAS = ("top_k", "thinking")  # request extras that already speak Anthropic

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_TYPES: dict[str, type[errors.ModelyardError]] = {
    "invalid_request_error": errors.BadRequestError,
    "authentication_error": errors.AuthenticationError,
    "billing_error": errors.BudgetExceededError,
    "permission_error": errors.PermissionDeniedError,
    "not_found_error": errors.NotFoundError,
    "request_too_large": errors.RequestTooLargeError,
    "rate_limit_error": errors.RateLimitError,
    "timeout_error": errors.TimeoutError,
    "api_error": errors.ProviderError,
    "overloaded_error": errors.ServiceUnavailableError,
}

Block = dict[str, Any]


# ---------------------------------------------------------------- request


def request_body(request: ChatRequest, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """The Messages API body for ``request`` (``model`` is already the upstream name)."""
    if request.n is not None and request.n > 1:
        raise errors.UnsupportedParameterError(
            "Anthropic returns one choice per request; n > 1 is not supported", param="n"
        )
    system, messages = convert_messages(request.messages)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if system is not None:
        body["system"] = system
    body["max_tokens"] = request.output_limit() or default_max_tokens
    _sampling(request, body)
    _tools(request, body)
    _thinking(request, body, explicit_limit=request.output_limit() is not None)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    return body


def _sampling(request: ChatRequest, body: dict[str, Any]) -> None:
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    extras = request.model_extra or {}
    for key in PASSTHROUGH_EXTRAS:
        if extras.get(key) is not None:
            body[key] = extras[key]


def _tools(request: ChatRequest, body: dict[str, Any]) -> None:
    if not request.tools:
        return
    body["tools"] = [tool_definition(t) for t in request.tools]
    choice = tool_choice(request.tool_choice)
    if request.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        body["tool_choice"] = choice


def tool_definition(tool: Tool) -> Block:
    """An OpenAI function tool as an Anthropic client tool."""
    fn = tool.function
    out: Block = {"name": fn.name}
    if fn.description:
        out["description"] = fn.description
    out["input_schema"] = fn.parameters or {"type": "object", "properties": {}}
    cache_control = (tool.model_extra or {}).get("cache_control")
    if cache_control is not None:
        out["cache_control"] = cache_control
    return out


def tool_choice(choice: str | dict[str, Any] | None) -> Block | None:
    """OpenAI ``tool_choice`` -> Anthropic ``tool_choice`` (None: leave the default)."""
    if choice is None:
        return None
    if isinstance(choice, str):
        kinds = {"auto": "auto", "required": "any", "any": "any", "none": "none"}
        if choice not in kinds:
            raise errors.BadRequestError(f"unknown tool_choice {choice!r}", param="tool_choice")
        return {"type": kinds[choice]}
    name = (choice.get("function") or {}).get("name") or choice.get("name")
    if not isinstance(name, str):
        raise errors.BadRequestError("tool_choice must name a function", param="tool_choice")
    return {"type": "tool", "name": name}


def _thinking(request: ChatRequest, body: dict[str, Any], *, explicit_limit: bool) -> None:
    """``reasoning_effort`` -> a thinking budget; the budget must stay below ``max_tokens``."""
    effort = request.reasoning_effort
    if "thinking" not in body and effort is not None and effort != "none":
        budget = THINKING_BUDGETS.get(effort)
        if budget is None:
            raise errors.BadRequestError(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
        if explicit_limit and body["max_tokens"] <= budget:
            budget = max(1024, body["max_tokens"] // 2)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if not explicit_limit and isinstance(budget, int) and body["max_tokens"] <= budget:
        body["max_tokens"] = budget + body["max_tokens"]  # thinking counts against max_tokens


def convert_messages(messages: list[Message]) -> tuple[str | list[Block] | None, list[Block]]:
    """Split into (top-level system, Anthropic turns); same-role neighbours merge into one turn."""
    system: list[Block] = []
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(content_blocks(message.content))
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return _compact(system), [{"role": role, "content": _compact(blocks) or ""} for role, blocks in turns]


def _compact(blocks: list[Block]) -> str | list[Block] | None:
    """A lone plain text block becomes a string; no blocks become None."""
    if not blocks:
        return None
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        text: str = blocks[0]["text"]
        return text
    return blocks


def _turn(message: Message) -> tuple[str, list[Block]]:
    if message.role in ("tool", "function"):
        return "user", [tool_result(message)]
    if message.role == "assistant":
        return "assistant", assistant_blocks(message)
    return "user", content_blocks(message.content)


def tool_result(message: Message) -> Block:
    """A ``tool`` message as a ``tool_result`` block (always inside a user turn)."""
    if not message.tool_call_id:
        raise errors.BadRequestError("a tool message needs tool_call_id", param="messages")
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = content_blocks(message.content)
    if content:
        block["content"] = _compact(content)
    if (message.model_extra or {}).get("is_error"):
        block["is_error"] = True
    return block


def assistant_blocks(message: Message) -> list[Block]:
    """Thinking (when signed), text, then ``tool_use`` blocks."""
    extras = message.model_extra or {}
    blocks: list[Block] = []
    signature = extras.get(SIGNATURE_FIELD)
    if message.reasoning_content and isinstance(signature, str) and signature:
        blocks.append({"type": "thinking", "thinking": message.reasoning_content, "signature": signature})
    blocks.extend(content_blocks(message.content))
    for call in message.tool_calls or []:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": _args(call)})
    return blocks


def _args(call: ToolCall) -> dict[str, Any]:
    raw = call.function.arguments.strip() or "{}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequestError(
            f"tool call {call.id!r} has arguments that are not JSON", param="messages"
        ) from exc
    if not isinstance(value, dict):
        raise errors.BadRequestError(f"tool call {call.id!r} arguments must be a JSON object", param="messages")
    return value


def content_blocks(content: str | list[ContentPart] | None) -> list[Block]:
    """Message content as Anthropic blocks; empty text is dropped (Anthropic rejects it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Block] = []
    for part in content:
        extras = part.model_extra or {}  # e.g. cache_control
        if part.type == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text, **extras})
        elif part.type == "image_url" and part.image_url is not None:
            blocks.append({"type": "image", "source": image_source(part.image_url.url), **extras})
        else:
            blocks.append(part.model_dump(exclude_none=True))  # Anthropic-shaped already, or upstream judges
    return blocks


def image_source(url: str) -> Block:
    """``data:`` URLs become base64 sources, http(s) URLs become url sources."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise errors.BadRequestError("image data URLs must be base64 encoded", param="messages")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise errors.BadRequestError("image_url must be an http(s) or data: URL", param="messages")


# ---------------------------------------------------------------- response


def usage_from(raw: dict[str, Any] | None) -> Usage:
    """Anthropic usage -> OpenAI usage.

    Anthropic's ``input_tokens`` excludes cache reads and writes; OpenAI's ``prompt_tokens`` includes them.
    """
    raw = raw or {}
    uncached = int(raw.get("input_tokens") or 0)
    read = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    output = int(raw.get("output_tokens") or 0)
    prompt = uncached + read + written
    thinking = int((raw.get("output_tokens_details") or {}).get("thinking_tokens") or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        prompt_tokens_details=(
            PromptTokensDetails(cached_tokens=read, cache_creation_tokens=written) if read or written else None
        ),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=thinking) if thinking else None,
    )


def finish_reason(stop_reason: str | None) -> str | None:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason``."""
    if stop_reason is None:
        return None
    return STOP_REASONS.get(stop_reason, "stop")


def chat_response(body: Any, model: str) -> ChatResponse:
    """A Messages API answer as a ``ChatResponse``."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise errors.ProviderError("Anthropic answered without a content list", model=model, body=body)
    text: list[str] = []
    thinking: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    for block in body["content"]:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            signature = block.get("signature") or signature
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = FunctionCall(name=block["name"], arguments=arguments)
            calls.append(ToolCall(id=block["id"], function=function))
    message = Message(
        role="assistant",
        content="".join(text) if text or not calls else None,
        reasoning_content="".join(thinking) or None,
        tool_calls=calls or None,
    )
    if signature:
        setattr(message, SIGNATURE_FIELD, signature)
    response = ChatResponse(
        model=body.get("model") or model,
        choices=[Choice(message=message, finish_reason=finish_reason(body.get("stop_reason")))],
        usage=usage_from(body.get("usage")),
    )
    if body.get("id"):
        response.id = body["id"]
    return response


# ---------------------------------------------------------------- errors


def parse_error(status: int, body: Any) -> tuple[type[errors.ModelyardError] | None, str | None, str | None]:
    """Read ``{"type": "error", "error": {"type", "message"}}``: class by error type, never by message."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, None, None
    kind = err.get("type") if isinstance(err.get("type"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    return ERROR_TYPES.get(kind or ""), message, kind


def stream_error(data: Any, provider: str, model: str) -> errors.ModelyardError:
    """An ``event: error`` inside a 200 stream, as the typed error it would have been as a status."""
    cls, message, code = parse_error(0, data)
    cls = cls or errors.ProviderError
    return cls(
        message or "Anthropic sent an error event mid-stream",
        provider=provider,
        model=model,
        code=code,
        body=data,
    )
