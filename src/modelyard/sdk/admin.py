"""The admin facade: logs, cost, conversations, system prompts, templates and keys, in-process or remote.

``client.admin`` is an ``Admin``: ``InProcessAdmin`` reads the gateway's stores directly, ``RemoteAdmin`` calls
a modelyard server's admin API (``/admin/...``, which needs the server's master key when it has one). Both
behave the same: a missing item is ``None`` or ``False`` where the method says so, everything else raises the
typed ``ModelyardError`` the gateway would raise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, Field

from modelyard.storage.base import (
    Conversation,
    ExportFormat,
    GroupBy,
    LogPage,
    LogQuery,
    RequestLog,
    SummaryRow,
    SystemPrompt,
    VirtualKey,
)

if TYPE_CHECKING:
    from modelyard.templates import PromptTemplate  # jinja2 loads only when templates are used
from modelyard.types.chat import Message

MessagesLike = Sequence[Message | dict[str, Any]]

#: Fields ``update_conversation`` may change.
CONVERSATION_FIELDS = frozenset({"title", "model", "system_prompt", "metadata"})


class GatewayInfo(BaseModel):
    """What a gateway serves: its version, default models and the providers it knows."""

    version: str
    default_model: str
    default_embedding_model: str
    providers: list[str] = Field(default_factory=list)


class DatabaseStatus(BaseModel):
    """Where the gateway's database is (password hidden) and whether its schema is current."""

    url: str
    revision: str | None = None
    head: str | None = None
    up_to_date: bool = False


class ReadyReport(BaseModel):
    """What ``/ready`` says: ``ready`` or ``not ready``, with one entry per check (``"ok"`` or the problem)."""

    status: str
    checks: dict[str, Any] = Field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class CreatedKey(NamedTuple):
    """A new virtual key: the stored record and the plaintext key (shown this once, never stored)."""

    key: VirtualKey
    plaintext: str


class Admin(ABC):
    """One interface to a gateway's stored state, whether the gateway runs here or behind a server."""

    # ----- the gateway ---------------------------------------------------------------------------------
    @abstractmethod
    async def info(self) -> GatewayInfo:
        """Version, default models and provider names of the gateway."""

    @abstractmethod
    async def database(self) -> DatabaseStatus:
        """The database URL and schema revision (reading it never migrates it)."""

    @abstractmethod
    async def ready(self) -> ReadyReport:
        """Readiness as ``/ready`` reports it: database reachable, log writer healthy, default model usable."""

    # ----- request logs --------------------------------------------------------------------------------
    @abstractmethod
    async def logs(self, query: LogQuery | None = None) -> LogPage:
        """One page of request logs matching ``query``, newest first (``query.text``: full-text search)."""

    async def search_logs(self, text: str, query: LogQuery | None = None) -> LogPage:
        """Requests whose prompt or response contains every word of ``text`` (other filters from ``query``)."""
        return await self.logs((query or LogQuery()).model_copy(update={"text": text}))

    @abstractmethod
    async def log(self, request_id: str) -> RequestLog | None:
        """One request in full, or ``None``."""

    @abstractmethod
    async def count_logs(self, query: LogQuery | None = None) -> int:
        """How many requests match ``query`` (its ``limit`` is ignored)."""

    @abstractmethod
    def export_logs(self, query: LogQuery | None = None, format: ExportFormat = "jsonl") -> AsyncIterator[str]:
        """Every matching request as JSON lines or CSV (a header first), streamed one record at a time."""

    @abstractmethod
    async def set_feedback(self, request_id: str, feedback: str | None) -> bool:
        """Attach feedback to a logged request; ``False`` when there is no such request."""

    @abstractmethod
    async def cost(
        self,
        by: GroupBy = "model",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]:
        """Requests, tokens, cost, errors and latency percentiles grouped ``by``, over rows matching ``where``."""

    # ----- conversations -------------------------------------------------------------------------------
    @abstractmethod
    async def conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """Saved conversations, most recently updated first, without their messages."""

    @abstractmethod
    async def conversation(self, conversation_id: str) -> Conversation | None:
        """A conversation with its messages, or ``None``."""

    @abstractmethod
    async def create_conversation(self, conversation: Conversation) -> Conversation:
        """Save a new conversation."""

    @abstractmethod
    async def update_conversation(self, conversation_id: str, **fields: Any) -> Conversation | None:
        """Change its ``title``, ``model``, ``system_prompt`` or ``metadata``; ``None`` when there is none."""

    async def rename_conversation(self, conversation_id: str, title: str) -> bool:
        """Give a conversation a new title; ``False`` when there is none."""
        return await self.update_conversation(conversation_id, title=title) is not None

    @abstractmethod
    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete a conversation and its messages; ``False`` when there is none."""

    @abstractmethod
    async def fork_conversation(
        self, conversation_id: str, at_message: int, title: str | None = None
    ) -> Conversation | None:
        """A copy holding messages ``0..at_message`` (inclusive); ``None`` when there is no such conversation."""

    @abstractmethod
    async def append_messages(self, conversation_id: str, messages: MessagesLike) -> int:
        """Add messages at the end and return the new count (``NotFoundError`` when there is no conversation)."""

    @abstractmethod
    async def replace_messages(self, conversation_id: str, messages: MessagesLike) -> bool:
        """Replace every message (after an edit or a retry); ``False`` when there is no conversation."""

    # ----- system prompts ------------------------------------------------------------------------------
    @abstractmethod
    async def system_prompts(self) -> list[SystemPrompt]:
        """Saved system prompts."""

    @abstractmethod
    async def system_prompt(self, id_or_name: str) -> SystemPrompt | None:
        """A saved system prompt by id or name, or ``None``."""

    @abstractmethod
    async def create_system_prompt(self, name: str, text: str) -> SystemPrompt:
        """Save a system prompt under a name."""

    @abstractmethod
    async def update_system_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None:
        """Rename it or change its text; ``None`` when there is none."""

    @abstractmethod
    async def delete_system_prompt(self, prompt_id: str) -> bool:
        """Delete a system prompt; ``False`` when there is none."""

    # ----- prompt templates ----------------------------------------------------------------------------
    @abstractmethod
    async def templates(self) -> list[PromptTemplate]:
        """Every template by name (database, user folder, built-ins), each with its ``origin``."""

    @abstractmethod
    async def template(self, name: str) -> PromptTemplate:
        """The template called ``name``; ``NotFoundError`` (naming close matches) when there is none."""

    @abstractmethod
    async def save_template(self, template: PromptTemplate, *, overwrite: bool = False) -> str:
        """Save a template and say where it went: in-process, a YAML file in the user's template folder;
        remote, the server's database. ``BadRequestError`` when it exists and ``overwrite`` is false."""

    @abstractmethod
    async def delete_template(self, name: str) -> bool:
        """Delete a saved template (database, or in-process the user's file); built-ins cannot be deleted."""

    @abstractmethod
    async def prune_logs(self, before: datetime) -> int:
        """Delete request logs older than ``before`` (in SQL, in batches); returns how many went."""

    @abstractmethod
    async def routing(self) -> dict[str, Any]:
        """Deployments (breaker state, in-flight, latency), model groups, rollouts and shared-state health."""

    @abstractmethod
    async def set_rollout(self, name: str, percent: float | None) -> float:
        """Change a rollout's percentage at run time (``None`` restores the configured one); returns the new one."""

    # ----- virtual keys --------------------------------------------------------------------------------
    @abstractmethod
    async def create_key(
        self,
        name: str,
        *,
        allowed_models: Sequence[str] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        budget: float | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        created_by: str | None = None,
    ) -> CreatedKey:
        """Mint a virtual key for the server; the plaintext is returned this once and never stored."""

    @abstractmethod
    async def keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        """Virtual keys with their limits and spend (hashes only, never the keys)."""

    @abstractmethod
    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; ``False`` when there is no such active key."""


def check_conversation_fields(fields: dict[str, Any]) -> None:
    """``BadRequestError`` for a field ``update_conversation`` cannot change."""
    from modelyard.errors import BadRequestError

    unknown = set(fields) - CONVERSATION_FIELDS
    if unknown:
        raise BadRequestError(f"cannot update conversation fields: {', '.join(sorted(unknown))}")


def plain_messages(messages: MessagesLike) -> list[dict[str, Any]]:
    """Messages as JSON-ready dicts."""
    return [m.model_dump(mode="json", exclude_none=True) if isinstance(m, Message) else dict(m) for m in messages]


__all__ = [
    "Admin",
    "CreatedKey",
    "DatabaseStatus",
    "GatewayInfo",
    "ReadyReport",
    "check_conversation_fields",
    "plain_messages",
]
