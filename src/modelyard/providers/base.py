"""The provider protocol: three methods (chat, stream, embed), a name and declared capabilities."""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelyard.config import ModelRule, Settings
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse

if TYPE_CHECKING:
    from modelyard.providers._http import HttpClient


@dataclass(frozen=True)
class ProviderSpec:
    """A provider row: data, not code. OpenAI-compatible services differ only here."""

    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None
    requires_key: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset({"chat", "stream", "tools"})
    rules: tuple[ModelRule, ...] = ()
    models: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def rules_for(self, model: str) -> list[ModelRule]:
        """Rules whose patterns match ``model`` (a rule with no pattern matches every model)."""
        return [r for r in self.rules if not r.match or any(fnmatch.fnmatch(model, p) for p in r.match)]


@dataclass(frozen=True)
class Timeouts:
    """Per-attempt timeouts in seconds (``total`` is what is left of the call's deadline)."""

    connect: float = 5.0
    read: float = 600.0
    write: float = 600.0
    pool: float = 30.0
    total: float | None = None


@dataclass
class ProviderCall:
    """One attempt at one deployment: the request with ``model`` set to the upstream model name."""

    request: ChatRequest
    request_id: str
    api_key: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbedCall:
    request: EmbeddingRequest
    request_id: str
    api_key: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderContext:
    """What a provider is built from: its row, the settings and the Gateway's shared HTTP client."""

    spec: ProviderSpec
    settings: Settings
    http: HttpClient


@runtime_checkable
class Provider(Protocol):
    """What every provider implements. Unsupported operations raise ``UnsupportedOperationError``."""

    name: str
    capabilities: frozenset[str]

    async def chat(self, call: ProviderCall) -> ChatResponse: ...

    def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]: ...

    async def embed(self, call: EmbedCall) -> EmbeddingResponse: ...

    async def aclose(self) -> None: ...
