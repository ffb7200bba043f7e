"""The admin JSON API (behind the master key when one is set): logs, costs, conversations, prompts, keys.

What the CLI's ``--server`` mode and the workbench use.
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
from modelyard.server.http import json_response, read_json
from modelyard.storage.base import Conversation, LogQuery, StoredTemplate, SystemPrompt, new_virtual_key
from modelyard.templates import TemplateLibrary
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


def log_query(request: Request) -> LogQuery:
    """A LogQuery from query-string filters (``q`` is full-text search)."""
    params = dict(request.query_params)
    if "q" in params:
        params["text"] = params.pop("q")
    params.pop("format", None)
    return parse_model(LogQuery, params)


class AdminRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        r = Route
        return [
            r("/admin/logs", self.logs),
            r("/admin/logs/export", self.export),
            r("/admin/logs/{id}", self.log),
            r("/admin/logs/{id}/feedback", self.feedback, methods=["POST"]),
            r("/admin/cost", self.cost),
            r("/admin/conversations", self.conversations, methods=["GET", "POST"]),
            r("/admin/conversations/{id}", self.conversation, methods=["GET", "PATCH", "DELETE"]),
            r("/admin/conversations/{id}/fork", self.fork, methods=["POST"]),
            r("/admin/prompts", self.prompts, methods=["GET", "POST"]),
            r("/admin/prompts/{id}", self.prompt, methods=["PATCH", "DELETE"]),
            r("/admin/templates", self.templates, methods=["GET", "POST"]),
            r("/admin/templates/{name}", self.template),
            r("/admin/keys", self.keys, methods=["GET", "POST"]),
            r("/admin/keys/{id}", self.revoke_key, methods=["DELETE"]),
        ]

    async def logs(self, request: Request) -> Response:
        store = await self.gateway.stores()
        page = await store.logs.query(log_query(request))
        return json_response({"items": _dump(page.items), "next_cursor": page.next_cursor})

    async def log(self, request: Request) -> Response:
        store = await self.gateway.stores()
        return json_response(_dump(_found(await store.logs.get(request.path_params["id"]), "log")))

    async def feedback(self, request: Request) -> Response:
        body = await read_json(request)
        store = await self.gateway.stores()
        _found(await store.logs.set_feedback(request.path_params["id"], body.get("feedback")), "log")
        return json_response({"ok": True})

    async def export(self, request: Request) -> Response:
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise errors.BadRequestError("format must be jsonl or csv", param="format")
        store = await self.gateway.stores()
        lines: AsyncIterator[str] = store.logs.export(log_query(request), fmt)  # type: ignore[arg-type]
        media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        headers = {"content-disposition": f'attachment; filename="modelyard-logs.{fmt}"'}
        return StreamingResponse((line.encode() async for line in lines), media_type=media, headers=headers)

    async def cost(self, request: Request) -> Response:
        by = request.query_params.get("by", "model")
        if by not in GROUPS:
            raise errors.BadRequestError(f"by must be one of {', '.join(GROUPS)}", param="by")
        since, until = (_when(request, k) for k in ("since", "until"))
        store = await self.gateway.stores()
        rows = await store.logs.summary(by, since=since, until=until)  # type: ignore[arg-type]
        return json_response({"by": by, "rows": _dump(rows)})

    async def conversations(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "POST":
            created = await store.conversations.create(parse_model(Conversation, await read_json(request)))
            return json_response(_dump(created), status=201)
        limit = int(request.query_params.get("limit", 50))
        return json_response({"items": _dump(await store.conversations.list(limit=limit))})

    async def conversation(self, request: Request) -> Response:
        store, cid = await self.gateway.stores(), request.path_params["id"]
        if request.method == "DELETE":
            _found(await store.conversations.delete(cid), "conversation")
            return json_response({"ok": True})
        if request.method == "PATCH":
            fields = {k: v for k, v in (await read_json(request)).items() if k in ("title", "model", "system_prompt")}
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
        fields = {k: v for k, v in (await read_json(request)).items() if k in ("name", "text")}
        return json_response(_dump(_found(await store.prompts.update_prompt(pid, **fields), "prompt")))

    async def templates(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "POST":
            saved = await store.prompts.save_template(parse_model(StoredTemplate, await read_json(request)))
            return json_response(_dump(saved), status=201)
        library = TemplateLibrary(self.gateway.settings, source=store.prompts)
        return json_response({"items": [t.model_dump(mode="json") for t in await library.list()]})

    async def template(self, request: Request) -> Response:
        store = await self.gateway.stores()
        library = TemplateLibrary(self.gateway.settings, source=store.prompts)
        found = await library.get(request.path_params["name"])
        return json_response({**found.model_dump(mode="json"), "variables": found.variables()})

    async def keys(self, request: Request) -> Response:
        store = await self.gateway.stores()
        if request.method == "GET":
            return json_response({"items": _dump(await store.keys.list())})
        body = await read_json(request)
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise errors.BadRequestError("name is required", param="name")
        allowed = {
            k: body[k] for k in ("allowed_models", "rpm", "tpm", "budget", "expires_at", "metadata") if k in body
        }
        try:
            record, plaintext = new_virtual_key(name, self.gateway.key_secret(), created_by="admin", **allowed)
        except ValueError as exc:
            raise errors.BadRequestError(f"invalid key settings: {exc}") from None
        created = await store.keys.create(record)
        return json_response({**_dump(created), "key": plaintext}, status=201)

    async def revoke_key(self, request: Request) -> Response:
        store = await self.gateway.stores()
        _found(await store.keys.revoke(request.path_params["id"]), "key")
        request.app.state.key_resolver.forget(request.path_params["id"])
        return json_response({"ok": True})


def _when(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise errors.BadRequestError(f"{name} must be an ISO date or datetime", param=name) from None
