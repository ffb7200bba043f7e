"""``RemoteAdmin``: the admin facade over a modelyard server's admin API (``/admin/...``, ``/ready``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from modelyard import errors
from modelyard.sdk.admin import (
    Admin,
    CreatedKey,
    DatabaseStatus,
    GatewayInfo,
    MessagesLike,
    ReadyReport,
    check_conversation_fields,
    plain_messages,
)
from modelyard.sdk.remote import RemoteTransport
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
from modelyard.templates import PromptTemplate


def query_params(query: LogQuery | None, **extra: Any) -> dict[str, str]:
    """A ``LogQuery`` (and extra parameters) as the admin API's query string; ``text`` travels as ``q``."""
    data = query.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if query is not None else {}
    if "text" in data:
        data["q"] = data.pop("text")
    data.update({k: v.isoformat() if isinstance(v, datetime) else v for k, v in extra.items() if v is not None})
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


def _segment(value: str) -> str:
    """An id or name as one URL path segment."""
    return quote(value, safe="")


async def csv_records(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """Whole CSV records from text chunks: a newline inside a quoted field does not end a record."""
    buffer, quotes = "", 0
    async for chunk in chunks:
        start = 0
        for index, char in enumerate(chunk):
            if char == '"':
                quotes += 1
            elif char == "\n" and quotes % 2 == 0:
                yield buffer + chunk[start : index + 1]
                buffer, start, quotes = "", index + 1, 0
        buffer += chunk[start:]
    if buffer:
        yield buffer


async def text_lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """Lines (each with its newline) from text chunks."""
    buffer = ""
    async for chunk in chunks:
        buffer += chunk
        while (end := buffer.find("\n")) >= 0:
            yield buffer[: end + 1]
            buffer = buffer[end + 1 :]
    if buffer:
        yield buffer


class RemoteAdmin(Admin):
    """Calls the server's admin API with the client's key (the server's master key, when it has one)."""

    def __init__(self, transport: RemoteTransport) -> None:
        self._transport = transport

    async def _json(self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None) -> Any:
        data, _ = await self._transport.call(method, path, params=params, json=json)
        return data

    async def _maybe(self, method: str, path: str, *, json: Any = None) -> Any:
        """The answer, or ``None`` when the server says there is no such item."""
        try:
            return await self._json(method, path, json=json)
        except errors.NotFoundError:
            return None

    # ----- the gateway ---------------------------------------------------------------------------------
    async def info(self) -> GatewayInfo:
        return GatewayInfo.model_validate(await self._json("GET", "/admin/info"))

    async def database(self) -> DatabaseStatus:
        return DatabaseStatus.model_validate(await self._json("GET", "/admin/db"))

    async def ready(self) -> ReadyReport:
        try:
            return ReadyReport.model_validate(await self._json("GET", "/ready"))
        except errors.ServiceUnavailableError as exc:  # 503 carries the report too
            body = exc.body if isinstance(exc.body, dict) else {}
            return ReadyReport(status="not ready", checks=body.get("checks") or {"server": exc.message})

    # ----- request logs --------------------------------------------------------------------------------
    async def logs(self, query: LogQuery | None = None) -> LogPage:
        return LogPage.model_validate(await self._json("GET", "/admin/logs", params=query_params(query)))

    async def log(self, request_id: str) -> RequestLog | None:
        found = await self._maybe("GET", f"/admin/logs/{_segment(request_id)}")
        return RequestLog.model_validate(found) if found is not None else None

    async def count_logs(self, query: LogQuery | None = None) -> int:
        return int((await self._json("GET", "/admin/logs/count", params=query_params(query)))["count"])

    async def export_logs(self, query: LogQuery | None = None, format: ExportFormat = "jsonl") -> AsyncIterator[str]:
        chunks = self._transport.text_stream("/admin/logs/export", query_params(query, format=format))
        records = csv_records(chunks) if format == "csv" else text_lines(chunks)
        async for record in records:
            yield record

    async def set_feedback(self, request_id: str, feedback: str | None) -> bool:
        path = f"/admin/logs/{_segment(request_id)}/feedback"
        return await self._maybe("POST", path, json={"feedback": feedback}) is not None

    async def cost(
        self,
        by: GroupBy = "model",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: LogQuery | None = None,
    ) -> list[SummaryRow]:
        params = query_params(where, by=by, since=since, until=until)
        params.pop("limit", None)
        return [SummaryRow.model_validate(r) for r in (await self._json("GET", "/admin/cost", params=params))["rows"]]

    # ----- conversations -------------------------------------------------------------------------------
    async def conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        params = {"limit": str(limit), "offset": str(offset)}
        items = (await self._json("GET", "/admin/conversations", params=params))["items"]
        return [Conversation.model_validate(c) for c in items]

    async def conversation(self, conversation_id: str) -> Conversation | None:
        found = await self._maybe("GET", f"/admin/conversations/{_segment(conversation_id)}")
        return Conversation.model_validate(found) if found is not None else None

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        body = conversation.model_dump(mode="json")
        return Conversation.model_validate(await self._json("POST", "/admin/conversations", json=body))

    async def update_conversation(self, conversation_id: str, **fields: Any) -> Conversation | None:
        check_conversation_fields(fields)
        found = await self._maybe("PATCH", f"/admin/conversations/{_segment(conversation_id)}", json=fields)
        return Conversation.model_validate(found) if found is not None else None

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._maybe("DELETE", f"/admin/conversations/{_segment(conversation_id)}") is not None

    async def fork_conversation(
        self, conversation_id: str, at_message: int, title: str | None = None
    ) -> Conversation | None:
        path = f"/admin/conversations/{_segment(conversation_id)}/fork"
        found = await self._maybe("POST", path, json={"at_message": at_message, "title": title})
        return Conversation.model_validate(found) if found is not None else None

    async def append_messages(self, conversation_id: str, messages: MessagesLike) -> int:
        path = f"/admin/conversations/{_segment(conversation_id)}/messages"
        return int((await self._json("POST", path, json={"messages": plain_messages(messages)}))["count"])

    async def replace_messages(self, conversation_id: str, messages: MessagesLike) -> bool:
        path = f"/admin/conversations/{_segment(conversation_id)}/messages"
        return await self._maybe("PUT", path, json={"messages": plain_messages(messages)}) is not None

    # ----- system prompts ------------------------------------------------------------------------------
    async def system_prompts(self) -> list[SystemPrompt]:
        return [SystemPrompt.model_validate(p) for p in (await self._json("GET", "/admin/prompts"))["items"]]

    async def system_prompt(self, id_or_name: str) -> SystemPrompt | None:
        found = await self._maybe("GET", f"/admin/prompts/{_segment(id_or_name)}")
        return SystemPrompt.model_validate(found) if found is not None else None

    async def create_system_prompt(self, name: str, text: str) -> SystemPrompt:
        return SystemPrompt.model_validate(
            await self._json("POST", "/admin/prompts", json={"name": name, "text": text})
        )

    async def update_system_prompt(
        self, prompt_id: str, *, name: str | None = None, text: str | None = None
    ) -> SystemPrompt | None:
        fields = {k: v for k, v in (("name", name), ("text", text)) if v is not None}
        found = await self._maybe("PATCH", f"/admin/prompts/{_segment(prompt_id)}", json=fields)
        return SystemPrompt.model_validate(found) if found is not None else None

    async def delete_system_prompt(self, prompt_id: str) -> bool:
        return await self._maybe("DELETE", f"/admin/prompts/{_segment(prompt_id)}") is not None

    # ----- prompt templates ----------------------------------------------------------------------------
    async def templates(self) -> list[PromptTemplate]:
        return [PromptTemplate.model_validate(t) for t in (await self._json("GET", "/admin/templates"))["items"]]

    async def template(self, name: str) -> PromptTemplate:
        found = await self._json("GET", f"/admin/templates/{_segment(name)}")
        found.pop("variables", None)
        return PromptTemplate.model_validate(found)

    async def save_template(self, template: PromptTemplate, *, overwrite: bool = False) -> str:
        body = {"name": template.name, "yaml": template.to_yaml(), "overwrite": overwrite}
        await self._json("POST", "/admin/templates", json=body)
        return f"the database of {self._transport.base_url}"

    async def delete_template(self, name: str) -> bool:
        return await self._maybe("DELETE", f"/admin/templates/{_segment(name)}") is not None

    # ----- virtual keys --------------------------------------------------------------------------------
    async def prune_logs(self, before: datetime) -> int:
        data = await self._json("DELETE", "/admin/logs", params={"before": before.isoformat()})
        return int(data["deleted"])

    async def routing(self) -> dict[str, Any]:
        status: dict[str, Any] = await self._json("GET", "/admin/routing")
        return status

    async def set_rollout(self, name: str, percent: float | None) -> float:
        path = f"/admin/rollouts/{_segment(name)}"
        data = await (
            self._json("DELETE", path) if percent is None else self._json("PUT", path, json={"percent": percent})
        )
        return float(data["percent"])

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
        fields: dict[str, Any] = {"rpm": rpm, "tpm": tpm, "budget": budget, "created_by": created_by}
        fields["expires_at"] = expires_at.isoformat() if expires_at is not None else None
        body: dict[str, Any] = {"name": name, "allowed_models": list(allowed_models), "metadata": dict(metadata or {})}
        body |= {k: v for k, v in fields.items() if v is not None}
        created = await self._json("POST", "/admin/keys", json=body)
        plaintext = created.pop("key")
        return CreatedKey(VirtualKey.model_validate(created), plaintext)

    async def keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        params = {"include_revoked": "true" if include_revoked else "false"}
        return [VirtualKey.model_validate(k) for k in (await self._json("GET", "/admin/keys", params=params))["items"]]

    async def revoke_key(self, key_id: str) -> bool:
        return await self._maybe("DELETE", f"/admin/keys/{_segment(key_id)}") is not None
