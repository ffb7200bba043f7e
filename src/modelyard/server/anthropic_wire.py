"""The Anthropic Messages API as a front door: its requests in, modelyard's chat format through, its answers out.

Pure translation for ``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (no I/O):
``anthropic_to_chat`` validates a request body and builds a ``ChatRequest`` (``count_tokens_request`` likewise,
without ``max_tokens``). The way back out (``chat_to_anthropic``, ``AnthropicStreamEncoder``,
``anthropic_error_body``) lives in ``server.anthropic_stream`` and is re-exported here, so routes import one module.

Anthropic-only data travels as extra fields that the Anthropic adapter reads back: ``thinking`` and ``top_k`` on
the request, ``reasoning_signature`` on assistant messages, ``is_error`` on tool messages, ``cache_control`` on
content parts and tools. Invalid input raises ``BadRequestError`` whose ``param`` names the field
(``messages.0.content.1.tool_use_id``). Top-level fields this module does not know are ignored.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic

from modelyard import errors
from modelyard.server.anthropic_stream import (
    SIGNATURE_FIELD,
    AnthropicStreamEncoder,
    anthropic_error_body,
    anthropic_error_type,
    anthropic_usage,
    chat_to_anthropic,
    new_message_id,
    stop_reason,
)
from modelyard.types.chat import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImageURL,
    Message,
    Tool,
    ToolCall,
)

__all__ = [
    "ERROR_FIELD",
    "SIGNATURE_FIELD",
    "AnthropicStreamEncoder",
    "anthropic_error_body",
    "anthropic_error_type",
    "anthropic_to_chat",
    "anthropic_usage",
    "chat_to_anthropic",
    "convert_messages",
    "count_tokens_request",
    "count_tokens_response",
    "new_message_id",
    "stop_reason",
]

Block = dict[str, Any]
ERROR_FIELD = "is_error"
"""Extra field on a ``tool`` message marking a failed tool result."""

_ASSISTANT_ONLY = frozenset({"tool_use", "thinking", "redacted_thinking", "server_tool_use"})
_TOOL_CHOICES: dict[str, str] = {"auto": "auto", "any": "required", "none": "none"}
_THINKING_KINDS = frozenset({"enabled", "disabled", "adaptive", "between_tools"})
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


# ---------------------------------------------------------------- validation helpers


def _bad(message: str, param: str) -> errors.BadRequestError:
    return errors.BadRequestError(f"{param}: {message}", param=param)


def _obj(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("expected an object" if value is not None else "field required", param)
    return value


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad("expected a string" if value is not None else "field required", param)
    return value


def _list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad("expected a list" if value is not None else "field required", param)
    return value


def _int(value: Any, param: str, minimum: int) -> int:
    if value is None:
        raise _bad("field required", param)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("expected an integer", param)
    if value < minimum:
        raise _bad(f"must be at least {minimum}", param)
    return value


def _number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _bad("expected a number between 0 and 1", param)
    return float(value)


def _blocks(content: Any, param: str) -> list[Block]:
    """Message content as blocks: a string is one text block; every block needs a string ``type``."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    items = _list(content, param)
    for j, item in enumerate(items):
        _str(_obj(item, f"{param}.{j}").get("type"), f"{param}.{j}.type")
    return items


# ---------------------------------------------------------------- request


def anthropic_to_chat(body: dict[str, Any]) -> tuple[ChatRequest, bool]:
    """Validate a ``POST /v1/messages`` body; return the ``ChatRequest`` and whether a stream was asked for."""
    body = _obj(body, "body")
    fields = _common(body)
    fields["max_tokens"] = _int(body.get("max_tokens"), "max_tokens", 1)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            fields[name] = _number(body[name], name)
    if body.get("top_k") is not None:
        fields["top_k"] = _int(body["top_k"], "top_k", 0)
    if body.get("stop_sequences") is not None:
        stops = [_str(s, f"stop_sequences.{i}") for i, s in enumerate(_list(body["stop_sequences"], "stop_sequences"))]
        if stops:
            fields["stop"] = stops
    if body.get("metadata") is not None:
        user = _obj(body["metadata"], "metadata").get("user_id")
        if user is not None:
            fields["user"] = _str(user, "metadata.user_id")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("expected a boolean", "stream")
    return _build(fields), stream


def count_tokens_request(body: dict[str, Any]) -> ChatRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body (no ``max_tokens``) as a ``ChatRequest``."""
    return _build(_common(_obj(body, "body")))


def count_tokens_response(input_tokens: int) -> dict[str, int]:
    """The ``count_tokens`` answer."""
    return {"input_tokens": input_tokens}


def _common(body: dict[str, Any]) -> dict[str, Any]:
    """What /v1/messages and count_tokens share: model, system + messages, tools, thinking, output config."""
    model = _str(body.get("model"), "model")
    if not model:
        raise _bad("must not be empty", "model")
    messages = convert_messages(body.get("messages"))
    system = _system(body.get("system"))
    fields: dict[str, Any] = {"model": model, "messages": [system, *messages] if system else messages}
    if body.get("tools") is not None:
        fields["tools"] = [_tool(t, f"tools.{i}") for i, t in enumerate(_list(body["tools"], "tools"))]
    if body.get("tool_choice") is not None:
        fields.update(_tool_choice(_obj(body["tool_choice"], "tool_choice")))
    if body.get("thinking") is not None:
        fields.update(_thinking(_obj(body["thinking"], "thinking")))
    if body.get("output_config") is not None:
        fields.update(_output_config(_obj(body["output_config"], "output_config")))
    return fields


def _build(fields: dict[str, Any]) -> ChatRequest:
    try:
        return ChatRequest.model_validate(fields)
    except pydantic.ValidationError as exc:  # only reachable through limits the checks above do not repeat
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise _bad(first["msg"], param) from exc


def _system(raw: Any, param: str = "system") -> Message | None:
    """``system`` (a string or text blocks) as a system message; empty, none."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return Message(role="system", content=raw)
    parts = []
    for j, block in enumerate(_blocks(raw, param)):
        if block["type"] != "text":
            raise _bad("system content must be text blocks", f"{param}.{j}.type")
        parts.append(_part(block, f"{param}.{j}"))
    return Message(role="system", content=_collapse(parts)) if parts else None


def convert_messages(raw: Any) -> list[Message]:
    """Anthropic turns as chat messages; a user turn's ``tool_result`` blocks become ``tool`` messages first.

    ``system`` turns inside ``messages`` (text only, as newer API versions allow) stay system messages in place.
    """
    items = _list(raw, "messages")
    if not items:
        raise _bad("at least one message is required", "messages")
    out: list[Message] = []
    for i, item in enumerate(items):
        param = f"messages.{i}"
        role = _obj(item, param).get("role")
        blocks = _blocks(item.get("content"), f"{param}.content")
        if role == "user":
            out.extend(_user(blocks, f"{param}.content"))
        elif role == "assistant":
            out.append(_assistant(blocks, f"{param}.content"))
        elif role == "system":
            system = _system(item.get("content"), f"{param}.content")
            out.extend([system] if system else [])
        else:
            raise _bad("must be 'user', 'assistant' or 'system'", f"{param}.role")
    return out


def _user(blocks: list[Block], param: str) -> list[Message]:
    results: list[Message] = []
    parts: list[ContentPart] = []
    for j, block in enumerate(blocks):
        kind = block["type"]
        if kind == "tool_result":
            results.append(_tool_result(block, f"{param}.{j}"))
        elif kind in _ASSISTANT_ONLY:
            raise _bad(f"{kind} blocks may only appear in assistant messages", f"{param}.{j}.type")
        else:
            parts.append(_part(block, f"{param}.{j}"))
    if parts or not results:
        results.append(Message(role="user", content=_collapse(parts)))
    return results


def _assistant(blocks: list[Block], param: str) -> Message:
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    thinking: list[str] = []
    signature: str | None = None
    for j, block in enumerate(blocks):
        kind = block["type"]
        if kind == "tool_use":
            calls.append(_tool_call(block, f"{param}.{j}"))
        elif kind == "thinking":
            thinking.append(_str(block.get("thinking"), f"{param}.{j}.thinking"))
            signature = block.get("signature") if isinstance(block.get("signature"), str) else signature
        elif kind == "tool_result":
            raise _bad("tool_result blocks may only appear in user messages", f"{param}.{j}.type")
        else:
            parts.append(_part(block, f"{param}.{j}"))
    message = Message(
        role="assistant",
        content=_collapse(parts) if parts or not calls else None,
        tool_calls=calls or None,
        reasoning_content="".join(thinking) or None,
    )
    if signature:
        setattr(message, SIGNATURE_FIELD, signature)
    return message


def _tool_call(block: Block, param: str) -> ToolCall:
    arguments = orjson.dumps(_obj(block.get("input"), f"{param}.input")).decode()
    name = _str(block.get("name"), f"{param}.name")
    return ToolCall(id=_str(block.get("id"), f"{param}.id"), function=FunctionCall(name=name, arguments=arguments))


def _tool_result(block: Block, param: str) -> Message:
    tool_use_id = _str(block.get("tool_use_id"), f"{param}.tool_use_id")
    raw = block.get("content", "")
    if isinstance(raw, str):
        content: str | list[ContentPart] = raw
    else:
        items = _blocks(raw, f"{param}.content")
        content = _collapse([_part(b, f"{param}.content.{k}") for k, b in enumerate(items)])
    message = Message(role="tool", tool_call_id=tool_use_id, content=content)
    is_error = block.get(ERROR_FIELD)
    if is_error is not None and not isinstance(is_error, bool):
        raise _bad("expected a boolean", f"{param}.{ERROR_FIELD}")
    if is_error:
        setattr(message, ERROR_FIELD, True)
    return message


def _part(block: Block, param: str) -> ContentPart:
    """A text or image block as an OpenAI content part; other blocks pass through as they are."""
    kind = block["type"]
    keep = {"cache_control": block["cache_control"]} if block.get("cache_control") is not None else {}
    if kind == "text":
        return ContentPart(type="text", text=_str(block.get("text"), f"{param}.text"), **keep)
    if kind == "image":
        source = _obj(block.get("source"), f"{param}.source")
        if source.get("type") == "base64":
            media_type = _str(source.get("media_type"), f"{param}.source.media_type")
            data = _str(source.get("data"), f"{param}.source.data")
            return ContentPart(type="image_url", image_url=ImageURL(url=f"data:{media_type};base64,{data}"), **keep)
        if source.get("type") == "url":
            url = _str(source.get("url"), f"{param}.source.url")
            return ContentPart(type="image_url", image_url=ImageURL(url=url), **keep)
    return ContentPart.model_validate(block)


def _collapse(parts: list[ContentPart]) -> str | list[ContentPart]:
    """One plain text part becomes a string (the most widely accepted shape); no parts, an empty string."""
    if not parts:
        return ""
    if len(parts) == 1 and parts[0].type == "text" and not parts[0].model_extra:
        return parts[0].text or ""
    return parts


def _tool(raw: Any, param: str) -> Tool:
    """A client tool ``{name, description, input_schema}`` as an OpenAI function tool."""
    tool = _obj(raw, param)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise _bad(f"server tool {kind!r} is not supported; only client tools are", f"{param}.type")
    description = tool.get("description")
    function = FunctionDefinition(
        name=_str(tool.get("name"), f"{param}.name"),
        description=_str(description, f"{param}.description") if description is not None else None,
        parameters=_obj(tool.get("input_schema"), f"{param}.input_schema"),
        strict=tool["strict"] if isinstance(tool.get("strict"), bool) else None,
    )
    keep = {"cache_control": tool["cache_control"]} if tool.get("cache_control") is not None else {}
    return Tool(function=function, **keep)


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    """``{type: auto|any|tool|none, disable_parallel_tool_use}`` -> tool_choice + parallel_tool_calls."""
    kind = choice.get("type")
    value: str | dict[str, Any]
    if kind == "tool":
        value = {"type": "function", "function": {"name": _str(choice.get("name"), "tool_choice.name")}}
    elif isinstance(kind, str) and kind in _TOOL_CHOICES:
        value = _TOOL_CHOICES[kind]
    else:
        raise _bad("must be one of auto, any, tool, none", "tool_choice.type")
    fields: dict[str, Any] = {"tool_choice": value}
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise _bad("expected a boolean", "tool_choice.disable_parallel_tool_use")
    if disable and kind != "none":
        fields["parallel_tool_calls"] = False
    return fields


def _thinking(config: dict[str, Any]) -> dict[str, Any]:
    """``thinking`` passes through as is; an enabled budget also sets ``reasoning_effort`` for other models."""
    kind = config.get("type")
    if kind not in _THINKING_KINDS:
        raise _bad("must be one of " + ", ".join(sorted(_THINKING_KINDS)), "thinking.type")
    fields: dict[str, Any] = {"thinking": dict(config)}
    if kind == "enabled":
        budget = _int(config.get("budget_tokens"), "thinking.budget_tokens", 1)
        fields["reasoning_effort"] = "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    return fields


def _output_config(config: dict[str, Any]) -> dict[str, Any]:
    """``output_config.effort`` -> reasoning_effort; ``output_config.format`` (a JSON schema) -> response_format."""
    fields: dict[str, Any] = {}
    effort = config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            raise _bad("must be one of " + ", ".join(_EFFORTS), "output_config.effort")
        fields["reasoning_effort"] = _EFFORTS[effort]
    if config.get("format") is not None:
        fmt = _obj(config["format"], "output_config.format")
        if fmt.get("type") != "json_schema":
            raise _bad("must be 'json_schema'", "output_config.format.type")
        schema = _obj(fmt.get("schema"), "output_config.format.schema")
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    return fields
