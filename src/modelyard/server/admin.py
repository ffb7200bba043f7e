"""The admin JSON API (behind the master key when one is set): logs, costs, conversations, prompts, keys.

What the SDK's admin facade (``client.admin``), the CLI's ``--server`` mode and the workbench use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.sdk.admin_local import logs_settled
from modelyard.server.http import json_response, read_json
from modelyard.storage.base import Conversation, LogQuery, StoredTemplate, SystemPrompt, new_virtual_key
from modelyard.storage.sql import SQLStore
from modelyard.templates import TemplateLibrary, template_from_content
from modelyard.types.chat import Message
from modelyard.types.validation import parse_model

GROUPS = ("model", "caller", "day", "tag", "provider")


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _found(value: Any, what: str) -> Any:
    if value is None or value is False:
        raise errors.NotFoundError(f"no such {what}", code=f"{what}_not_found")
    return value


def log_query(request: Request, *, ignore: tuple[str, ...] = ("format",)) -> LogQuery:
    """A LogQuery from query-string filters (``q`` is full-text search); ``ignore`` names other parameters."""
    params = dict(request.query_params)
    if "q" in params:
        params["text"] = params.pop("q")
    for name in ignore:
        params.pop(name, None)
    return parse_model(LogQuery, params)


def _flag(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false", "1", "0"):
        raise errors.BadRequestError(f"{name} must be true or false", param=name)
    return raw.lower() in ("true", "1")


def _messages(body: dict[str, Any]) -> list[Message]:
    """The ``messages`` list of a request body, validated."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise errors.BadRequestError("messages must be a list of chat message objects", param="messages")
    return [parse_model(Message, m) for m in raw]


class AdminRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _logged(self) -> SQLStore:
        """The stores, once every request log submitted before now is written (read-your-writes for the
        admin's log and cost reads, as the SDK's in-process admin gives)."""
        store = await self.gateway.stores()
        await logs_settled(self.gateway)
        return store

    def routes(self) -> list[Route]:
        r = Route
        return [
            r("/admin/info", self.info),
            r("/admin/db", self.database),
            r("/admin/logs", self.logs, methods=["GET", "DELETE"]),
            r("/admin/logs/export", self.export),
            r("/admin/logs/count", self.count),
            r("/admin/logs/{id}", self.log),
            r("/admin/logs/{id}/feedback", self.feedback, methods=["POST"]),
            r("/admin/cost", self.cost),
            r("/admin/conversations", self.conversations, methods=["GET", "POST"]),
            r("/admin/conversations/{id}", self.conversation, methods=["GET", "PATCH", "DELETE"]),
            r("/admin/conversations/{id}/fork", self.fork, methods=["POST"]),
            r("/admin/conversations/{id}/messages", self.conversation_messages, methods=["POST", "PUT"]),
            r("/admin/prompts", self.prompts, methods=["GET", "POST"]),
            r("/admin/prompts/{id}", self.prompt, methods=["GET", "PATCH", "DELETE"]),
            r("/admin/templates", self.templates, methods=["GET", "POST"]),
            r("/admin/templates/{name}", self.template, methods=["GET", "DELETE"]),
            r("/admin/keys", self.keys, methods=["GET", "POST"]),
            r("/admin/keys/{id}", self.revoke_key, methods=["DELETE"]),
        ]

    async def info(self, request: Request) -> Response:
        """What this gateway serves: version, default models and provider names."""
        from modelyard import __version__

        settings = self.gateway.settings
        return json_response(
            {
                "version": __version__,
                "default_model": settings.default_model,
                "default_embedding_model": settings.default_embedding_model,
                "providers": sorted(self.gateway.specs),
            }
        )

    async def database(self, request: Request) -> Response:
        """The database URL (password hidden), its schema revision and the newest one this version ships."""
        from modelyard.storage.engine import normalize_url
        from modelyard.storage.migrate import current_revision, head_revision

        url = normalize_url(self.gateway.settings.database_url)
        current, head = await current_revision(url), head_revision()
        shown = url.render_as_string(hide_password=True)
        return json_response({"url": shown, "revision": current, "head": head, "up_to_date": current == head})

    async def logs(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self.prune(request)
        store = await self._logged()
        page = await store.logs.query(log_query(request))
        return json_response({"items": _dump(page.items), "next_cursor": page.next_cursor})

    async def count(self, request: Request) -> Response:
        store = await self._logged()
        return json_response({"count": await store.logs.count(log_query(request))})

    async def prune(self, request: Request) -> Response:
        """``DELETE /admin/logs?before=ISO-DATE``: retention, run in SQL in batches."""
        before = _when(request, "before")
        if before is None:
            raise errors.BadRequestError("before is required (an ISO date or datetime)", param="before")
        store = await self.gateway.stores()
        return json_response({"deleted": await store.logs.delete_older_than(before)})

    async def log(self, request: Request) -> Response:
        store = await self._logged()
        return json_response(_dump(_found(await store.logs.get(request.path_params["id"]), "log")))

    async def feedback(self, request: Request) -> Response:
        body = await read_json(request)
        store = await self._logged()
        _found(await store.logs.set_feedback(request.path_params["id"], body.get("feedback")), "log")
        return json_response({"ok": True})

    async def export(self, request: Request) -> Response:
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise errors.BadRequestError("format must be jsonl or csv", param="format")
        store = await self._logged()
        lines: AsyncIterator[str] = store.logs.export(log_query(request), fmt)  # type: ignore[arg-type]
        media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        headers = {"content-disposition": f'attachment; filename="modelyard-logs.{fmt}"'}
        return StreamingResponse((line.encode() async for line in lines), media_type=media, headers=headers)

    async def cost(self, request: Request) -> Response:
        """Totals grouped ``by``; the other parameters filter the rows like ``/admin/logs``."""
        by = request.query_params.get("by", "model")
        if by not in GROUPS:
            raise errors.BadRequestError(f"by must be one of {', '.join(GROUPS)}", param="by")
        since, until = (_when(request, k) for k in ("since", "until"))
        where = log_query(request, ignore=("by", "since", "until"))
        store = await self._logged()
        rows = await store.logs.summary(by, since=since, until=until, where=where)  # type: ignore[arg-type]
        return json_response({"by": by, "rows": _dump(rows)})

    async def conversations(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "POST":
            created = await store.conversations.create(parse_model(Conversation, await read_json(request)))
            return json_response(_dump(created), status=201)
        limit, offset = (_number(request, name, default) for name, default in (("limit", 50), ("offset", 0)))
        return json_response({"items": _dump(await store.conversations.list(limit=limit, offset=offset))})

    async def conversation(self, request: Request) -> Response:
        store, cid = await self.gateway.stores(), request.path_params["id"]
        if request.method == "DELETE":
            _found(await store.conversations.delete(cid), "conversation")
            return json_response({"ok": True})
        if request.method == "PATCH":
            body = await read_json(request)
            fields = {k: v for k, v in body.items() if k in ("title", "model", "system_prompt", "metadata")}
            return json_response(_dump(_found(await store.conversations.update(cid, **fields), "conversation")))
        return json_response(_dump(_found(await store.conversations.get(cid), "conversation")))

    async def fork(self, request: Request) -> Response:
        body = await read_json(request)
        at = body.get("at_message")
        if not isinstance(at, int):
            raise errors.BadRequestError("at_message must be a message index", param="at_message")
        store = await self.gateway.stores()
        forked = await store.conversations.fork(request.path_params["id"], at, body.get("title"))
        return json_response(_dump(_found(forked, "conversation")), status=201)

    async def conversation_messages(self, request: Request) -> Response:
        """POST appends messages (answers the new count); PUT replaces them all."""
        messages = _messages(await read_json(request))
        store, cid = await self.gateway.stores(), request.path_params["id"]
        if request.method == "PUT":
            _found(await store.conversations.replace_messages(cid, messages), "conversation")
            return json_response({"ok": True})
        return json_response({"count": await store.conversations.append(cid, messages)})  # 404 when there is none

    async def prompts(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "POST":
            created = await store.prompts.create_prompt(parse_model(SystemPrompt, await read_json(request)))
            return json_response(_dump(created), status=201)
        return json_response({"items": _dump(await store.prompts.list_prompts())})

    async def prompt(self, request: Request) -> Response:
        store, pid = await self.gateway.stores(), request.path_params["id"]
        if request.method == "DELETE":
            _found(await store.prompts.delete_prompt(pid), "prompt")
            return json_response({"ok": True})
        if request.method == "GET":
            return json_response(_dump(_found(await store.prompts.get_prompt(pid), "prompt")))
        fields = {k: v for k, v in (await read_json(request)).items() if k in ("name", "text")}
        return json_response(_dump(_found(await store.prompts.update_prompt(pid, **fields), "prompt")))

    async def templates(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "POST":
            return await self._save_template(await read_json(request), store.prompts)
        library = TemplateLibrary(self.gateway.settings, source=store.prompts)
        return json_response({"items": [t.model_dump(mode="json") for t in await library.list()]})

    async def _save_template(self, body: dict[str, Any], prompts: Any) -> Response:
        """Store a template in the database (checked first); ``"overwrite": false`` refuses to replace one."""
        overwrite = body.pop("overwrite", True)
        stored = parse_model(StoredTemplate, body)
        template_from_content(stored.content, name=stored.name, origin="db")  # a syntax error is a 400 now
        if overwrite is False and await prompts.get_template(stored.name) is not None:
            raise errors.BadRequestError(
                f"template {stored.name!r} already exists on the server", param="name", code="template_exists"
            )
        return json_response(_dump(await prompts.save_template(stored)), status=201)

    async def template(self, request: Request) -> Response:
        store, name = await self.gateway.stores(), request.path_params["name"]
        if request.method == "DELETE":
            _found(await store.prompts.delete_template(name), "template")
            return json_response({"ok": True})
        library = TemplateLibrary(self.gateway.settings, source=store.prompts)
        found = await library.get(name)
        return json_response({**found.model_dump(mode="json"), "variables": found.variables()})

    async def keys(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "GET":
            revoked = _flag(request, "include_revoked", True)
            return json_response({"items": _dump(await store.keys.list(include_revoked=revoked))})
        body = await read_json(request)
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise errors.BadRequestError("name is required", param="name")
        allowed = {
            k: body[k] for k in ("allowed_models", "rpm", "tpm", "budget", "expires_at", "metadata") if k in body
        }
        by = body.get("created_by")
        created_by = by if isinstance(by, str) and by else "admin"
        try:
            record, plaintext = new_virtual_key(name, self.gateway.key_secret(), created_by=created_by, **allowed)
        except ValueError as exc:
            raise errors.BadRequestError(f"invalid key settings: {exc}") from None
        created = await store.keys.create(record)
        return json_response({**_dump(created), "key": plaintext}, status=201)

    async def revoke_key(self, request: Request) -> Response:
        store = await self.gateway.stores()
        _found(await store.keys.revoke(request.path_params["id"]), "key")
        request.app.state.key_resolver.forget(request.path_params["id"])
        return json_response({"ok": True})


def _number(request: Request, name: str, default: int) -> int:
    """A whole-number query parameter."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise errors.BadRequestError(f"{name} must be a whole number", param=name)
    return int(raw)


def _when(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise errors.BadRequestError(f"{name} must be an ISO date or datetime", param=name) from None
