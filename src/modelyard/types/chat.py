"""The OpenAI chat-completions format: modelyard's internal language.

Every model keeps unknown fields (``extra="allow"``) so provider-specific fields pass through untouched.
"""

from __future__ import annotations

import time
import uuid
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from modelyard.types.usage import Usage


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ImageURL(_Open):
    """An image by URL or data: URL."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(_Open):
    """One part of a multi-part message: ``text`` or ``image_url`` (others pass through)."""

    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class FunctionCall(_Open):
    """A function call's name and JSON-encoded arguments."""

    name: str
    arguments: str = ""


class ToolCall(_Open):
    """A tool call made by the assistant."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    """A chat message (system, developer, user, assistant or tool)."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        """The message's text, joining text parts of multi-part content."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class FunctionDefinition(_Open):
    """A function the model may call: name, description, JSON-schema parameters."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    """A tool offered to the model."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatRequest(_Open):
    """A chat-completions request. ``model`` is ``provider/model`` or an alias."""

    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    reasoning_effort: str | None = None

    def output_limit(self) -> int | None:
        """The requested cap on generated tokens, whichever field carried it."""
        return self.max_completion_tokens or self.max_tokens


class Choice(_Open):
    index: int = 0
    message: Message
    finish_reason: str | None = None
    logprobs: Any = None


class AttemptInfo(_Open):
    """One upstream attempt, as reported on the response."""

    model: str
    provider: str
    status: int | None = None
    error: str | None = None
    latency_ms: float | None = None


class ModelyardInfo(_Open):
    """What modelyard adds to a response: who served it, what was tried, what was changed."""

    request_id: str = ""
    provider: str | None = None
    served_model: str | None = None
    requested_model: str | None = None
    attempts: list[AttemptInfo] = Field(default_factory=list)
    dropped_params: list[str] = Field(default_factory=list)
    cost: float | None = None
    cost_source: Literal["computed", "billed", "none"] | None = None
    billed_cost: float | None = None
    usage_estimated: bool = False
    cache_hit: bool = False

    @property
    def retries(self) -> int:
        """Attempts that followed a failed attempt on the same model (the copies of an emulated ``n`` are not)."""
        if len(self.attempts) < 2:
            return 0
        return sum(
            1 for before, after in pairwise(self.attempts) if after.model == before.model and before.status != 200
        )

    @property
    def fallbacks(self) -> int:
        """Other models tried after the first."""
        if len(self.attempts) < 2:
            return 0
        return max(0, len({a.model for a in self.attempts}) - 1)


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class ChatResponse(_Open):
    """A complete (non-streamed) chat-completion."""

    id: str = Field(default_factory=new_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    modelyard: ModelyardInfo | None = None

    @property
    def text(self) -> str:
        """The first choice's text (empty when there is none)."""
        return self.choices[0].message.text() if self.choices else ""


class FunctionCallDelta(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Open):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(_Open):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None


class ChunkChoice(_Open):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: Any = None


class ChatChunk(_Open):
    """One ``chat.completion.chunk`` of a stream."""

    id: str = ""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    modelyard: ModelyardInfo | None = None
    # A plain slot, not a pydantic private attribute: those cost an extra Python call on every validation.
    __slots__ = ("_wire_object",)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatChunk:
        """Validate a chunk as an OpenAI-compatible upstream sent it, keeping that form to forward unchanged."""
        chunk = cls.model_validate(data)
        object.__setattr__(chunk, "_wire_object", data)
        return chunk

    @classmethod
    def from_wire_batch(cls, objects: list[dict[str, Any]]) -> list[ChatChunk]:
        """``from_wire`` for the chunks of one network read, validated in one call (cheaper per chunk)."""
        chunks = _CHUNK_LIST.validate_python(objects)
        for chunk, data in zip(chunks, objects, strict=True):
            object.__setattr__(chunk, "_wire_object", data)
        return chunks

    @property
    def wire(self) -> dict[str, Any] | None:
        """The upstream's own JSON object for this chunk, when it came from one and nobody changed it since
        (copies never carry it)."""
        wire: dict[str, Any] | None = getattr(self, "_wire_object", None)
        return wire

    def forget_wire(self) -> None:
        """Drop the upstream form (call after changing the chunk)."""
        object.__setattr__(self, "_wire_object", None)

    def take_wire(self) -> dict[str, Any] | None:
        """``wire``, forgotten by the chunk as it is handed over (for a caller that sends it on and changes it)."""
        wire: dict[str, Any] | None = getattr(self, "_wire_object", None)
        if wire is not None:
            object.__setattr__(self, "_wire_object", None)
        return wire

    @property
    def text(self) -> str:
        """Text delta of the first choice (empty when none)."""
        if not self.choices:
            return ""
        return self.choices[0].delta.content or ""


_CHUNK_LIST: TypeAdapter[list[ChatChunk]] = TypeAdapter(list[ChatChunk])
