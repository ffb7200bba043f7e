"""Apply a row's per-model rules (data) to a request: drop, rename, defaults, system suffix."""

from __future__ import annotations

from modelyard import errors
from modelyard.config import ModelRule
from modelyard.types.chat import ChatRequest, Message

_CORE_FIELDS = {"model", "messages", "stream"}


def adjust_request(
    request: ChatRequest, rules: list[ModelRule], *, strict: bool, provider: str
) -> tuple[ChatRequest, list[str]]:
    """Return the adjusted request and the names of the parameters that were dropped.

    In strict mode a parameter the model rejects raises ``UnsupportedParameterError`` instead of being dropped.
    """
    if not rules:
        return request, []
    data = request.model_dump(exclude_none=True)
    dropped: list[str] = []
    for rule in rules:
        if rule.no_tools and data.get("tools"):
            raise errors.UnsupportedOperationError(
                f"{provider}/{request.model} does not support tool calling",
                provider=provider,
                model=request.model,
                param="tools",
            )
        for name in rule.drop:
            if name in data and name not in _CORE_FIELDS:
                if strict:
                    raise errors.UnsupportedParameterError(
                        f"{provider}/{request.model} does not accept '{name}'",
                        provider=provider,
                        model=request.model,
                        param=name,
                    )
                data.pop(name)
                dropped.append(name)
        for old, new in rule.rename.items():
            if old in data:
                data.setdefault(new, data.pop(old))
        for name, value in rule.defaults.items():
            data.setdefault(name, value)
        if rule.system_suffix:
            data["messages"] = _with_system_suffix(request.messages, rule.system_suffix)
    return ChatRequest.model_validate(data), dropped


def _with_system_suffix(messages: list[Message], suffix: str) -> list[dict[str, object]]:
    out = [m.model_dump(exclude_none=True) for m in messages]
    for message in out:
        if message["role"] == "system" and isinstance(message.get("content"), str):
            message["content"] = f"{message['content']}\n\n{suffix}"
            return out
    return [{"role": "system", "content": suffix}, *out]


def wants_stream_emulation(rules: list[ModelRule]) -> bool:
    """True when the model cannot stream and the gateway must turn a full answer into chunks."""
    return any(rule.no_stream for rule in rules)
