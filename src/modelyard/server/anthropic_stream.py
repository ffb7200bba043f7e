"""modelyard's answers in the Anthropic Messages API's shape: the Message object, error envelopes, SSE events.

Pure translation, no I/O. ``chat_to_anthropic`` turns a ``ChatResponse`` into an Anthropic ``Message``;
``AnthropicStreamEncoder`` turns a stream of ``ChatChunk`` into the exact ``message_start`` …
``message_stop`` event bytes; ``anthropic_error_body`` maps the error tree to Anthropic's error envelope.
The request side lives in ``server.anthropic_wire``, which re-exports everything public here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard import errors
from modelyard.streaming import encode_json_sse
from modelyard.types.chat import ChatChunk, ChatResponse, Delta, Message, ToolCall, ToolCallDelta
from modelyard.types.usage import Usage

Block = dict[str, Any]
SIGNATURE_FIELD = "reasoning_signature"
"""Extra field on an assistant message (and stream delta) carrying the thinking block's signature."""

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# ---------------------------------------------------------------- response


def new_message_id() -> str:
    """A fresh ``msg_…`` id."""
    return f"msg_{uuid.uuid4().hex[:24]}"


def new_tool_id() -> str:
    """A fresh ``toolu_…`` id, for a tool call that came without one."""
    return f"toolu_{uuid.uuid4().hex[:24]}"


def message_id(response_id: str) -> str:
    """A chat completion id in Anthropic's ``msg_`` form (kept when it already is)."""
    if not response_id:
        return new_message_id()
    return response_id if response_id.startswith("msg_") else f"msg_{response_id.removeprefix('chatcmpl-')}"


def anthropic_usage(usage: Usage | None) -> dict[str, int]:
    """OpenAI usage -> Anthropic usage, whose ``input_tokens`` excludes cache reads and cache writes."""
    if usage is None:
        usage = Usage()
    details = usage.prompt_tokens_details
    read = details.cached_tokens if details else 0
    written = (details.cache_creation_tokens or 0) if details else 0
    return {
        "input_tokens": max(usage.prompt_tokens - read - written, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }


def matched_stop(extra: dict[str, Any] | None) -> str | None:
    """The stop sequence a choice reports having matched (``stop_sequence``, or vLLM's ``stop_reason``)."""
    for key in ("stop_sequence", "stop_reason"):
        value = (extra or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def stop_reason(finish_reason: str | None, *, tool_calls: bool, stop_sequence: str | None) -> str:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason``."""
    if finish_reason in (None, "stop") and tool_calls:
        return "tool_use"
    if finish_reason == "stop" and stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def chat_to_anthropic(response: ChatResponse, model: str) -> dict[str, Any]:
    """A ``ChatResponse`` as an Anthropic ``Message`` object (first choice only)."""
    content: list[Block] = []
    finish: str | None = None
    stop_sequence: str | None = None
    if response.choices:
        choice = response.choices[0]
        content = _content(choice.message)
        finish = choice.finish_reason
        stop_sequence = matched_stop(choice.model_extra) if finish == "stop" else None
    tools = any(block["type"] == "tool_use" for block in content)
    reason = stop_reason(finish, tool_calls=tools, stop_sequence=stop_sequence)
    return {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence if reason == "stop_sequence" else None,
        "usage": anthropic_usage(response.usage),
    }


def _content(message: Message) -> list[Block]:
    """Thinking, text, then tool_use blocks."""
    extra = message.model_extra or {}
    blocks: list[Block] = []
    if message.reasoning_content:
        signature = extra.get(SIGNATURE_FIELD)
        blocks.append({"type": "thinking", "thinking": message.reasoning_content, "signature": signature or ""})
    refusal = extra.get("refusal")
    text = message.text() + (refusal if isinstance(refusal, str) else "")
    if text or (message.content is not None and not message.tool_calls):
        blocks.append({"type": "text", "text": text})
    for call in message.tool_calls or []:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": _input(call)})
    return blocks


def _input(call: ToolCall) -> dict[str, Any]:
    """A tool call's JSON arguments as the ``input`` object Anthropic clients expect."""
    try:
        value = orjson.loads(call.function.arguments.strip() or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise errors.ProviderError(f"the model sent tool call {call.id!r} with arguments that are not a JSON object")
    return value


# ---------------------------------------------------------------- errors


def anthropic_error_type(exc: errors.ModelyardError) -> tuple[int, str]:
    """The HTTP status and Anthropic error ``type`` for ``exc`` (503/529 -> 529 ``overloaded_error``)."""
    if isinstance(exc, errors.BudgetExceededError):
        return 402, "billing_error"
    if isinstance(exc, errors.TimeoutError):
        return 504, "timeout_error"
    status = exc.status_code
    if status in (503, 529):
        return 529, "overloaded_error"
    if status in _ERROR_TYPES:
        return status, _ERROR_TYPES[status]
    if 400 <= status < 500:
        return status, "invalid_request_error"
    return (status if status > 500 else 500), "api_error"


def anthropic_error_body(exc: errors.ModelyardError) -> tuple[int, dict[str, Any]]:
    """The status and ``{"type": "error", "error": {"type", "message"}}`` envelope for ``exc``."""
    status, kind = anthropic_error_type(exc)
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": exc.message}}
    if exc.request_id:
        body["request_id"] = exc.request_id
    return status, body


# ---------------------------------------------------------------- stream


def _event(kind: str, data: Block) -> bytes:
    return encode_json_sse(data, kind)


@dataclass
class _PendingTool:
    """A tool call seen before its name: its block cannot start until the name is known."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class AnthropicStreamEncoder:
    """Turns ``ChatChunk``s into Anthropic stream events, as exact SSE bytes.

    Blocks open and close as the delta kind changes (thinking, text, one ``tool_use`` block per tool-call
    index); the stop reason and usage, which arrive on the last chunks, go out in ``finish()``. Every method
    returns the events to write, possibly none; after ``finish()`` or ``error()`` everything returns none.
    """

    def __init__(self, model: str, *, message_id: str | None = None, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.input_tokens = input_tokens  # an estimate for message_start; the final usage overrides it
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (kind, tool-call index) of the open block
        self._open_index = -1
        self._tool_blocks: dict[int, int] = {}  # tool-call index -> content block index
        self._pending: dict[int, _PendingTool] = {}
        self._finish_reason: str | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None

    def start(self) -> list[bytes]:
        """The ``message_start`` event (once; ``feed`` sends it when it was not sent yet)."""
        if self._started:
            return []
        self._started = True
        usage = {
            "input_tokens": self.input_tokens,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        message: Block = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        """The events for one chunk (first choice only); remembers its finish reason and usage."""
        if self._done:
            return []
        out = self.start()
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            out += self._delta(choice.delta)
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
                self._stop_sequence = matched_stop(choice.model_extra)
        return out

    def finish(self) -> list[bytes]:
        """Close the open block, then ``message_delta`` (stop reason, usage) and ``message_stop``."""
        if self._done:
            return []
        out = self.start()
        for index in sorted(self._pending):
            out += self._open_tool(index)
        out += self._close()
        self._done = True
        reason = stop_reason(self._finish_reason, tool_calls=bool(self._tool_blocks), stop_sequence=self._stop_sequence)
        delta = {"stop_reason": reason, "stop_sequence": self._stop_sequence if reason == "stop_sequence" else None}
        usage: dict[str, int] = anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out

    def error(self, exc: errors.ModelyardError) -> list[bytes]:
        """An ``error`` event for a failure after the stream began; the stream ends with it."""
        if self._done:
            return []
        self._done = True
        return [_event("error", anthropic_error_body(exc)[1])]

    def _delta(self, delta: Delta) -> list[bytes]:
        out: list[bytes] = []
        if delta.reasoning_content:
            out += self._block_delta("thinking", {"type": "thinking_delta", "thinking": delta.reasoning_content})
        signature = (delta.model_extra or {}).get(SIGNATURE_FIELD)
        if isinstance(signature, str) and signature:
            out += self._block_delta("thinking", {"type": "signature_delta", "signature": signature})
        text = (delta.content or "") + (delta.refusal or "")
        if text:
            out += self._block_delta("text", {"type": "text_delta", "text": text})
        for call in delta.tool_calls or []:
            out += self._tool(call)
        return out

    def _block_delta(self, kind: str, delta: Block) -> list[bytes]:
        """A thinking or text delta, opening its block first when another kind is open."""
        start = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        out = self._switch((kind, 0), start)
        out.append(self._delta_event(self._open_index, delta))
        return out

    def _tool(self, call: ToolCallDelta) -> list[bytes]:
        """A tool-call delta: arguments of a started block go out as ``input_json_delta``."""
        name = call.function.name if call.function else None
        arguments = call.function.arguments if call.function else None
        block = self._tool_blocks.get(call.index)
        if block is not None:  # a late delta for a closed block keeps its index: clients merge by index
            return [self._json_delta(block, arguments)] if arguments else []
        pending = self._pending.setdefault(call.index, _PendingTool())
        pending.id = call.id or pending.id
        pending.name = name or pending.name
        if arguments:
            pending.arguments.append(arguments)
        return self._open_tool(call.index) if pending.name else []

    def _open_tool(self, index: int) -> list[bytes]:
        pending = self._pending.pop(index)
        start = {"type": "tool_use", "id": pending.id or new_tool_id(), "name": pending.name, "input": {}}
        out = self._switch(("tool_use", index), start)
        self._tool_blocks[index] = self._open_index
        if pending.arguments:
            out.append(self._json_delta(self._open_index, "".join(pending.arguments)))
        return out

    def _json_delta(self, index: int, partial: str) -> bytes:
        return self._delta_event(index, {"type": "input_json_delta", "partial_json": partial})

    def _delta_event(self, index: int, delta: Block) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _switch(self, key: tuple[str, int], block: Block) -> list[bytes]:
        """Make ``key`` the open block: close the one open, start the new one at the next index."""
        if self._open == key:
            return []
        out = self._close()
        self._open, self._open_index = key, self._next_index
        self._next_index += 1
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self._open_index, "content_block": block},
            )
        )
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self._open_index})]
