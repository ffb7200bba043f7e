"""``InProcessAdmin``: the admin facade over an in-process gateway's stores and template library."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from modelyard import errors
from modelyard.pipeline import stream_ends_settled
from modelyard.sdk.admin import (
    Admin,
    CreatedKey,
    DatabaseStatus,
    GatewayInfo,
    MessagesLike,
    ReadyReport,
    check_conversation_fields,
)
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
    new_virtual_key,
)
from modelyard.templates import NAME_PATTERN, PromptTemplate, TemplateLibrary

#: How long a log or cost read waits for rows still in the log writer's queue (its flush takes ~0.2 s).
SETTLE_SECONDS = 1.0


async def logs_settled(gateway: Any, timeout: float = SETTLE_SECONDS) -> None:
    """Wait (at most ``timeout``) until every request log submitted before now is written or set aside.

    Log rows reach the database through a batching queue; this gives log and cost reads read-your-writes.
    """
    writer = gateway.writer
    if writer is None:
        return
    await stream_ends_settled()
    target, deadline = writer.stats.submitted, time.monotonic() + timeout
    while _handled(writer.stats) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _handled(stats: Any) -> int:
    """Rows the log writer is done with (written, or set aside)."""
    return int(stats.written + stats.duplicates + stats.spilled + stats.rejected + stats.lost)


class InProcessAdmin(Admin):
    """Reads and writes the gateway's database (opened and migrated on first use)."""

    def __init__(self, gateway: Callable[[], Any]) -> None:
        self._gateway = gateway  # the transport builds its Gateway lazily: ask for it only when needed

    async def _stores(self) -> Any:
        return await self._gateway().stores()

    async def _logged(self) -> Any:
        """The stores, once the request logs of calls already made are written."""
        store = await self._stores()
        await logs_settled(self._gateway())
        return store

    async def _library(self) -> TemplateLibrary:
        return TemplateLibrary(self._gateway().settings, source=(await self._stores()).prompts)

    # ----- the gateway ---------------------------------------------------------------------------------
    async def info(self) -> GatewayInfo:
        from modelyard import __version__

        gateway = self._gateway()
        settings = gateway.settings
        return GatewayInfo(
            version=__version__,
            default_model=settings.default_model,
            default_embedding_model=settings.default_embedding_model,
            providers=sorted(gateway.specs),
        )

    async def database(self) -> DatabaseStatus:
        from modelyard.storage.engine import normalize_url
        from modelyard.storage.migrate import current_revision, head_revision

        url = normalize_url(self._gateway().settings.database_url)
        current, head = await current_revision(url), head_revision()
        shown: str = url.render_as_string(hide_password=True)
        return DatabaseStatus(url=shown, revision=current, head=head, up_to_date=current == head)

    async def ready(self) -> ReadyReport:
        gateway = self._gateway()
        checks: dict[str, Any] = {}
        try:
            await (await self._stores()).logs.count()
            checks["database"] = "ok"
        except Exception as exc:  # report it, as /ready does
            checks["database"] = f"error: {type(exc).__name__}"
        writer = gateway.writer
        checks["log_writer"] = "ok" if writer is None or writer.stats.healthy else "spilling to disk"
        checks["default_model"] = gateway.readiness(gateway.settings.default_model)
        ready = checks["database"] == "ok" and checks["default_model"] == "ok"
        return ReadyReport(status="ready" if ready else "not ready", checks=checks)

    # ----- request logs --------------------------------------------------------------------------------
    async def logs(self, query: LogQuery | None = None) -> LogPage:
        page: LogPage = await (await self._logged()).logs.query(query or LogQuery())
        return page

    async def log(self, request_id: str) -> RequestLog | None:
        found: RequestLog | None = await (await self._logged()).logs.get(request_id)
        return found

    async def count_logs(self, query: LogQuery | None = None) -> int:
        return int(await (await self._logged()).logs.count(query))

    async def export_logs(self, query: LogQuery | None = None, format: ExportFormat = "jsonl") -> AsyncIterator[str]:
        store = await self._logged()
        async for line in store.logs.export(query, format):
            yield line

    async def set_feedback(self, request_id: str, feedback: str | None) -> bool:
        return bool(await (await self._logged()).logs.set_feedback(request_id, feedback))

    async def cost(
        self,
        by: GroupBy = "model",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]:
        rows: list[SummaryRow] = await (await self._logged()).logs.summary(by, since, until, where=where)
        return rows

    # ----- conversations -------------------------------------------------------------------------------
    async def conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        found: list[Conversation] = await (await self._stores()).conversations.list(limit=limit, offset=offset)
        return found

    async def conversation(self, conversation_id: str) -> Conversation | None:
        found: Conversation | None = await (await self._stores()).conversations.get(conversation_id)
        return found

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        created: Conversation = await (await self._stores()).conversations.create(conversation)
        return created

    async def update_conversation(self, conversation_id: str, **fields: Any) -> Conversation | None:
        check_conversation_fields(fields)
        updated: Conversation | None = await (await self._stores()).conversations.update(conversation_id, **fields)
        return updated

    async def delete_conversation(self, conversation_id: str) -> bool:
        return bool(await (await self._stores()).conversations.delete(conversation_id))

    async def fork_conversation(
        self, conversation_id: str, at_message: int, title: str | None = None
    ) -> Conversation | None:
        store = await self._stores()
        forked: Conversation | None = await store.conversations.fork(conversation_id, at_message, title)
        return forked

    async def append_messages(self, conversation_id: str, messages: MessagesLike) -> int:
        return int(await (await self._stores()).conversations.append(conversation_id, list(messages)))

    async def replace_messages(self, conversation_id: str, messages: MessagesLike) -> bool:
        return bool(await (await self._stores()).conversations.replace_messages(conversation_id, list(messages)))

    # ----- system prompts ------------------------------------------------------------------------------
    async def system_prompts(self) -> list[SystemPrompt]:
        found: list[SystemPrompt] = await (await self._stores()).prompts.list_prompts()
        return found

    async def system_prompt(self, id_or_name: str) -> SystemPrompt | None:
        found: SystemPrompt | None = await (await self._stores()).prompts.get_prompt(id_or_name)
        return found

    async def create_system_prompt(self, name: str, text: str) -> SystemPrompt:
        created: SystemPrompt = await (await self._stores()).prompts.create_prompt(SystemPrompt(name=name, text=text))
        return created

    async def update_system_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None:
        store = await self._stores()
        updated: SystemPrompt | None = await store.prompts.update_prompt(prompt_id, name=name, text=text)
        return updated

    async def delete_system_prompt(self, prompt_id: str) -> bool:
        return bool(await (await self._stores()).prompts.delete_prompt(prompt_id))

    # ----- prompt templates ----------------------------------------------------------------------------
    async def templates(self) -> list[PromptTemplate]:
        return await (await self._library()).list()

    async def template(self, name: str) -> PromptTemplate:
        return await (await self._library()).get(name)

    async def save_template(self, template: PromptTemplate, *, overwrite: bool = False) -> str:
        return str((await self._library()).save_user(template, overwrite=overwrite))

    async def delete_template(self, name: str) -> bool:
        if await (await self._stores()).prompts.delete_template(name):
            return True
        path = (await self._library()).user_dir / f"{name}.yaml"
        if re.fullmatch(NAME_PATTERN, name) is None or not path.is_file():
            return False
        path.unlink()
        return True

    # ----- virtual keys --------------------------------------------------------------------------------
    async def prune_logs(self, before: datetime) -> int:
        return int(await (await self._stores()).logs.delete_older_than(before))

    async def routing(self) -> dict[str, Any]:
        status: dict[str, Any] = self._gateway().routing_status()
        return status

    async def set_rollout(self, name: str, percent: float | None) -> float:
        return float(await self._gateway().set_rollout(name, percent))

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
        fields: dict[str, Any] = {"allowed_models": list(allowed_models), "rpm": rpm, "tpm": tpm, "budget": budget}
        fields |= {"expires_at": expires_at, "metadata": dict(metadata or {})}
        try:
            record, plaintext = new_virtual_key(
                name, self._gateway().key_secret(), created_by=created_by or "admin", **fields
            )
        except ValueError as exc:
            raise errors.BadRequestError(f"invalid key settings: {exc}") from None
        created: VirtualKey = await (await self._stores()).keys.create(record)
        return CreatedKey(created, plaintext)

    async def keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        found: list[VirtualKey] = await (await self._stores()).keys.list(include_revoked=include_revoked)
        return found

    async def revoke_key(self, key_id: str) -> bool:
        return bool(await (await self._stores()).keys.revoke(key_id))
