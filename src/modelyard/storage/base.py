"""What the storage layer stores (pydantic models) and what a store can do (protocols).

The protocols are what the rest of modelyard depends on; ``SQLStore`` (SQLite or PostgreSQL) implements them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelyard.types.chat import AttemptInfo, Message

CostSource = Literal["computed", "billed", "none"]
LogStatus = Literal["ok", "error", "rejected", "client_disconnected", "cache_hit"]
GroupBy = Literal["model", "caller", "day", "tag", "provider"]
ExportFormat = Literal["jsonl", "csv"]

#: Plain text kept per side of a request for full-text search (longer text is cut; this also keeps
#: PostgreSQL's tsvector well under its 1 MB limit).
MAX_SEARCH_TEXT = 50_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str) and "reasoning_content" not in message and not message.get("tool_calls"):
        return content  # the common case, without the list and join below
    parts = [_content_text(content)]
    if isinstance(message.get("reasoning_content"), str):
        parts.append(message["reasoning_content"])
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.extend(str(function.get(k) or "") for k in ("name", "arguments"))
    return " ".join(p for p in parts if p)


def messages_text(messages: Sequence[dict[str, Any]] | None) -> str:
    """The searchable plain text of chat messages (content, reasoning, tool call names and arguments)."""
    text = "\n".join(t for t in (_message_text(m) for m in messages or ()) if t)
    return text[:MAX_SEARCH_TEXT]


def response_text(response: dict[str, Any] | None) -> str:
    """The searchable plain text of a chat response: every choice's message."""
    if not response:
        return ""
    choices = response.get("choices") or []
    text = "\n".join(t for t in (_message_text(c.get("message")) for c in choices if isinstance(c, dict)) if t)
    return text[:MAX_SEARCH_TEXT]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("created_at", "updated_at", "expires_at", "revoked_at", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class RequestLog(_Model):
    """One row per logical request, with every attempt it took."""

    # ``_encoded``: the row's column values as a store encoded them ahead of its write (``SQLLogStore.prepare``).
    # A bare slot, not annotated: an annotation would make it a pydantic private attribute (those cost ~1.5 µs per
    # row built and per read). Copies do not carry it.
    __slots__ = ("_encoded",)

    request_id: str = Field(min_length=1, max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    caller: str = "local"
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    attempts: list[AttemptInfo] = Field(default_factory=list)
    messages: list[dict[str, Any]] | None = None
    response: dict[str, Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tools: list[Any] | None = None
    tool_calls: list[Any] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    cost_source: CostSource = "none"
    billed_cost: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    status: LogStatus = "ok"
    error_type: str | None = None
    error_message: str | None = None
    stream: bool = False
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    conversation_id: str | None = None
    cache_hit: bool = False
    fallback_used: bool = False
    run_id: str | None = None
    feedback: str | None = None
    prompt_text: str | None = None
    response_text: str | None = None

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tag for tag in tags if tag))

    @field_validator("prompt_text", "response_text")
    @classmethod
    def _cut(cls, text: str | None) -> str | None:
        return None if text is None else text[:MAX_SEARCH_TEXT]

    @classmethod
    def from_checked(cls, fields: dict[str, Any]) -> RequestLog:
        """A row made from ``fields`` without validation (~1 µs instead of ~10): for the logging middleware, whose
        rows already give every field, each of its declared type, with unique tags and their search text set."""
        if len(fields) != _REQUEST_LOG_FIELDS:
            raise ValueError(f"a checked request log gives all {_REQUEST_LOG_FIELDS} fields, not {len(fields)}")
        row = cls.__new__(cls)
        # What pydantic's own ``model_construct`` sets, without its per-field defaults and aliases.
        object.__setattr__(row, "__dict__", fields)
        object.__setattr__(row, "__pydantic_fields_set__", set(fields))
        object.__setattr__(row, "__pydantic_extra__", None)
        object.__setattr__(row, "__pydantic_private__", None)
        return row

    @model_validator(mode="after")
    def _derive_text(self) -> RequestLog:
        """Fill ``prompt_text`` / ``response_text`` from messages / response when not given."""
        if self.prompt_text is None:
            self.prompt_text = messages_text(self.messages)
        if self.response_text is None:
            self.response_text = response_text(self.response)
        return self


_REQUEST_LOG_FIELDS = len(RequestLog.model_fields)


class LogQuery(BaseModel):
    """Filters over request logs; results come newest first."""

    model: str | None = Field(default=None, description="requested or served model")
    provider: str | None = None
    status: LogStatus | None = None
    caller: str | None = None
    tag: str | None = None
    conversation_id: str | None = None
    run_id: str | None = None
    since: datetime | None = Field(default=None, description="created_at >= since")
    until: datetime | None = Field(default=None, description="created_at < until")
    text: str | None = Field(default=None, description="full-text search over prompt and response")
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")


class LogPage(BaseModel):
    """One page of a query; pass ``next_cursor`` back as ``LogQuery.cursor`` for the next."""

    items: list[RequestLog]
    next_cursor: str | None = None


class SummaryRow(BaseModel):
    """Totals for one group (a model, caller, day, tag or provider)."""

    key: str | None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: int = 0
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Conversation(_Model):
    """A saved chat: its messages keep ``reasoning_content`` and ``tool_calls``."""

    id: str = Field(default_factory=lambda: _new_id("conv"))
    title: str = ""
    model: str | None = None
    system_prompt: str | None = None
    messages: list[Message] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    forked_from: str | None = None
    forked_at_message: int | None = None
    message_count: int = Field(default=0, description="set by the store (``list`` leaves messages empty)")


class SystemPrompt(_Model):
    id: str = Field(default_factory=lambda: _new_id("sp"))
    name: str = Field(min_length=1, max_length=255)
    text: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StoredTemplate(_Model):
    """A prompt template saved by name: its YAML text and the parsed content (either fills the other)."""

    name: str = Field(min_length=1, max_length=255)
    yaml: str = ""
    content: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _fill(self) -> StoredTemplate:
        if not self.content and self.yaml.strip():
            loaded = yaml.safe_load(self.yaml)
            if not isinstance(loaded, dict):
                raise ValueError("a template's YAML must be a mapping")
            self.content = loaded
        elif self.content and not self.yaml:
            self.yaml = yaml.safe_dump(self.content, sort_keys=False, allow_unicode=True)
        return self


class VirtualKey(_Model):
    """A gateway API key. Only its HMAC-SHA256 hash is stored; ``prefix`` is for display."""

    id: str = Field(default_factory=lambda: _new_id("vk"))
    name: str
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    prefix: str = Field(max_length=32)
    allowed_models: list[str] = Field(default_factory=list, description="empty: every model")
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    spent: float = 0.0
    expires_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    created_by: str | None = None

    def is_active(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired."""
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def hash_key(key: str, secret: str | bytes) -> str:
    """HMAC-SHA256 (hex) of a plaintext key under the server's secret."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, key.encode(), hashlib.sha256).hexdigest()


def new_virtual_key(
    name: str, secret: str | bytes, *, key_prefix: str = "sk-my-", **fields: Any
) -> tuple[VirtualKey, str]:
    """A fresh random key: the ``VirtualKey`` to store and the plaintext (shown once, never stored)."""
    plaintext = key_prefix + secrets.token_urlsafe(32)
    key = VirtualKey(name=name, key_hash=hash_key(plaintext, secret), prefix=plaintext[: len(key_prefix) + 6], **fields)
    return key, plaintext


@runtime_checkable
class LogStore(Protocol):
    """Request logs: batch writes, lookups, filters, full-text search, totals, retention and export."""

    async def write_batch(self, logs: Sequence[RequestLog]) -> int:
        """Insert in one transaction; a request_id already stored is ignored. Returns rows inserted."""
        ...

    async def get(self, request_id: str) -> RequestLog | None: ...

    async def query(self, query: LogQuery) -> LogPage: ...

    async def search(self, text: str, limit: int = 50) -> list[RequestLog]: ...

    async def count(self, query: LogQuery | None = None) -> int: ...

    async def total_cost(self, query: LogQuery) -> float:
        """The summed cost of the rows ``query`` matches (its ``limit`` and ``offset`` are ignored)."""
        ...

    async def summary(
        self,
        group_by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]: ...

    async def delete_older_than(self, before: datetime) -> int: ...

    def export(
        self, query: LogQuery | None = None, format: ExportFormat = "jsonl", limit: int | None = None
    ) -> AsyncIterator[str]:
        """Every matching row as text lines (each ending in a newline), read page by page."""
        ...

    async def set_feedback(self, request_id: str, feedback: str | None) -> bool: ...


@runtime_checkable
class ConversationStore(Protocol):
    async def create(self, conversation: Conversation) -> Conversation: ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def list(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """Most recently updated first, without messages (``message_count`` is set)."""
        ...

    async def append(self, conversation_id: str, messages: Sequence[Message | dict[str, Any]]) -> int:
        """Add messages at the end; returns the new message count."""
        ...

    async def replace_messages(self, conversation_id: str, messages: Sequence[Message | dict[str, Any]]) -> bool: ...

    async def update(self, conversation_id: str, **fields: Any) -> Conversation | None:
        """Change title, model, system_prompt or metadata."""
        ...

    async def rename(self, conversation_id: str, title: str) -> bool: ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def fork(self, conversation_id: str, at_message_index: int, title: str | None = None) -> Conversation | None:
        """A new conversation holding messages ``0..at_message_index`` (inclusive) of this one."""
        ...


@runtime_checkable
class PromptStore(Protocol):
    async def create_prompt(self, prompt: SystemPrompt) -> SystemPrompt: ...

    async def get_prompt(self, id_or_name: str) -> SystemPrompt | None: ...

    async def list_prompts(self) -> list[SystemPrompt]: ...

    async def update_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None: ...

    async def delete_prompt(self, prompt_id: str) -> bool: ...

    async def save_template(self, template: StoredTemplate) -> StoredTemplate:
        """Insert or replace by name (``created_at`` of an existing one is kept)."""
        ...

    async def get_template(self, name: str) -> StoredTemplate | None: ...

    async def list_templates(self) -> list[StoredTemplate]: ...

    async def delete_template(self, name: str) -> bool: ...


@runtime_checkable
class SessionRevocationStore(Protocol):
    """Workbench sessions logged out before they expire (a session's cookie is signed, not stored)."""

    async def revoke(self, nonce: str, expires_at: datetime) -> None: ...

    async def revoked(self) -> set[str]:
        """The nonces of sessions logged out and not yet expired."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    async def create(self, key: VirtualKey) -> VirtualKey: ...

    async def get(self, key_id: str) -> VirtualKey | None: ...

    async def get_by_hash(self, key_hash: str) -> VirtualKey | None: ...

    async def list(self, include_revoked: bool = True) -> list[VirtualKey]: ...

    async def revoke(self, key_id: str) -> bool: ...

    async def add_spend(self, key_id: str, amount: float) -> float | None:
        """Atomically add to ``spent``; returns the new total (``None`` if no such key)."""
        ...
