"""``SyncAdmin``: the admin facade for the synchronous ``Client`` (same methods, run on the client's loop)."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from modelyard.sdk.admin import Admin, CreatedKey, DatabaseStatus, GatewayInfo, MessagesLike, ReadyReport
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

T = TypeVar("T")


class Runner(Protocol):
    """Runs a coroutine on the loop where the client (and its gateway or HTTP session) lives."""

    def run(self, coro: Coroutine[Any, Any, T]) -> T: ...


class SyncAdmin:
    """Every method of ``Admin`` (see it for what each does), blocking; ``export_logs`` is a plain iterator."""

    def __init__(self, runner: Runner, admin: Admin) -> None:
        self._run = runner.run
        self._admin = admin

    def info(self) -> GatewayInfo:
        return self._run(self._admin.info())

    def database(self) -> DatabaseStatus:
        return self._run(self._admin.database())

    def ready(self) -> ReadyReport:
        return self._run(self._admin.ready())

    def logs(self, query: LogQuery | None = None) -> LogPage:
        return self._run(self._admin.logs(query))

    def search_logs(self, text: str, query: LogQuery | None = None) -> LogPage:
        return self._run(self._admin.search_logs(text, query))

    def log(self, request_id: str) -> RequestLog | None:
        return self._run(self._admin.log(request_id))

    def count_logs(self, query: LogQuery | None = None) -> int:
        return self._run(self._admin.count_logs(query))

    def export_logs(self, query: LogQuery | None = None, format: ExportFormat = "jsonl") -> Iterator[str]:
        """Records one at a time, each fetched on the client's loop; stopping early closes the export."""
        records = self._admin.export_logs(query, format)
        try:
            while True:
                try:
                    yield self._run(_next(records))
                except StopAsyncIteration:
                    return
        finally:
            self._run(_close(records))

    def set_feedback(self, request_id: str, feedback: str | None) -> bool:
        return self._run(self._admin.set_feedback(request_id, feedback))

    def cost(
        self,
        by: GroupBy = "model",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]:
        return self._run(self._admin.cost(by, since=since, until=until, where=where))

    def conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        return self._run(self._admin.conversations(limit, offset))

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._run(self._admin.conversation(conversation_id))

    def create_conversation(self, conversation: Conversation) -> Conversation:
        return self._run(self._admin.create_conversation(conversation))

    def update_conversation(self, conversation_id: str, **fields: Any) -> Conversation | None:
        return self._run(self._admin.update_conversation(conversation_id, **fields))

    def rename_conversation(self, conversation_id: str, title: str) -> bool:
        return self._run(self._admin.rename_conversation(conversation_id, title))

    def delete_conversation(self, conversation_id: str) -> bool:
        return self._run(self._admin.delete_conversation(conversation_id))

    def fork_conversation(self, conversation_id: str, at_message: int, title: str | None = None) -> Conversation | None:
        return self._run(self._admin.fork_conversation(conversation_id, at_message, title))

    def append_messages(self, conversation_id: str, messages: MessagesLike) -> int:
        return self._run(self._admin.append_messages(conversation_id, messages))

    def replace_messages(self, conversation_id: str, messages: MessagesLike) -> bool:
        return self._run(self._admin.replace_messages(conversation_id, messages))

    def system_prompts(self) -> list[SystemPrompt]:
        return self._run(self._admin.system_prompts())

    def system_prompt(self, id_or_name: str) -> SystemPrompt | None:
        return self._run(self._admin.system_prompt(id_or_name))

    def create_system_prompt(self, name: str, text: str) -> SystemPrompt:
        return self._run(self._admin.create_system_prompt(name, text))

    def update_system_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None:
        return self._run(self._admin.update_system_prompt(prompt_id, name=name, text=text))

    def delete_system_prompt(self, prompt_id: str) -> bool:
        return self._run(self._admin.delete_system_prompt(prompt_id))

    def templates(self) -> list[PromptTemplate]:
        return self._run(self._admin.templates())

    def template(self, name: str) -> PromptTemplate:
        return self._run(self._admin.template(name))

    def save_template(self, template: PromptTemplate, *, overwrite: bool = False) -> str:
        return self._run(self._admin.save_template(template, overwrite=overwrite))

    def delete_template(self, name: str) -> bool:
        return self._run(self._admin.delete_template(name))

    def prune_logs(self, before: datetime) -> int:
        return self._run(self._admin.prune_logs(before))

    def routing(self) -> dict[str, Any]:
        return self._run(self._admin.routing())

    def set_rollout(self, name: str, percent: float | None) -> float:
        return self._run(self._admin.set_rollout(name, percent))

    def create_key(
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
        return self._run(
            self._admin.create_key(
                name,
                allowed_models=allowed_models,
                rpm=rpm,
                tpm=tpm,
                budget=budget,
                expires_at=expires_at,
                metadata=metadata,
                created_by=created_by,
            )
        )

    def keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        return self._run(self._admin.keys(include_revoked))

    def revoke_key(self, key_id: str) -> bool:
        return self._run(self._admin.revoke_key(key_id))


async def _next(records: Any) -> str:
    item: str = await records.__anext__()
    return item


async def _close(records: Any) -> None:
    await records.aclose()


def _share_docs() -> None:
    """Each blocking method documents itself as the ``Admin`` method it runs."""
    for name, method in vars(SyncAdmin).items():
        original = getattr(Admin, name, None)
        if callable(method) and not name.startswith("_") and method.__doc__ is None and original is not None:
            method.__doc__ = original.__doc__


_share_docs()
