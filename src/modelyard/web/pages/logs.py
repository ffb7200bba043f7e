"""Logs: browse, search and filter, a detail view, a diff of two responses, export, and replay to other models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelyard import errors
from modelyard.storage.base import LogQuery, LogStatus, RequestLog
from modelyard.types.chat import ChatRequest, Message
from modelyard.web.base import Workbench, posted
from modelyard.web.diff import side_by_side
from modelyard.web.forms import chosen_model, model_groups
from modelyard.web.pages.compare import SLOTS, start_group
from modelyard.web.render import message_text

PAGE_SIZE = 50
CHOICE_DAYS = 30
FILTERS = ("q", "model", "provider", "status", "caller", "tag", "conversation_id", "since", "until")
REPLAY_TAG = "workbench-replay"
#: Logged params that describe the original call rather than what to ask the model.
NOT_REPLAYED = {"stream", "stream_options", "n", "user", "metadata"}


def _day(raw: str, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise errors.BadRequestError(f"{name} must be a date (YYYY-MM-DD)", param=name) from None


def filters_of(request: Request) -> dict[str, str]:
    """The filters in the query string (empty ones dropped)."""
    return {k: v.strip() for k in FILTERS if (v := request.query_params.get(k, "")).strip()}


def log_query(filters: dict[str, str], limit: int = PAGE_SIZE, cursor: str | None = None) -> LogQuery:
    """A ``LogQuery`` from page filters; dates are whole UTC days (``until`` inclusive)."""
    since, until = _day(filters.get("since", ""), "since"), _day(filters.get("until", ""), "until")
    fields: dict[str, Any] = {k: filters.get(k) for k in ("model", "provider", "caller", "tag", "conversation_id")}
    status = filters.get("status")
    if status and status not in get_args(LogStatus):
        raise errors.BadRequestError("unknown status", param="status")
    try:
        return LogQuery(
            **fields,
            status=status or None,
            text=filters.get("q"),
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
            limit=limit,
            cursor=cursor,
        )
    except ValidationError as exc:
        raise errors.BadRequestError(f"invalid filter: {exc.errors()[0]['msg']}") from None


def replay_request(log: RequestLog, model: str) -> ChatRequest:
    """The logged request, sent again to ``model`` (bodies must have been stored)."""
    if not log.messages:
        raise errors.BadRequestError("this log row has no stored request body to replay")
    params = {k: v for k, v in log.params.items() if k not in NOT_REPLAYED}
    if log.tools:
        params["tools"] = log.tools
    messages = [Message.model_validate(m) for m in log.messages]
    return ChatRequest(model=model, messages=messages, **params)


def response_text(log: RequestLog) -> str:
    """The logged answer's text (first choice)."""
    choices = (log.response or {}).get("choices") or [{}]
    message = choices[0].get("message") or {}
    return message_text(message.get("content"))


class LogsPage:
    """``/logs``, ``/logs/{id}``, ``/logs/diff``, export and replay."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Logs routes."""
        return [
            Route("/logs", self.index),
            Route("/logs/diff", self.diff),
            Route("/logs/{id}", self.detail),
            Route("/ui/logs/export", self.export),
            Route("/ui/logs/{id}/replay", posted(self.bench)(self.replay), methods=["POST"]),
        ]

    async def _choices(self) -> dict[str, list[str]]:
        """Values seen in the last ``CHOICE_DAYS`` days, for the filter menus."""
        store = await self.bench.store()
        since = datetime.now(UTC) - timedelta(days=CHOICE_DAYS)
        found = {}
        for group in ("model", "provider", "caller", "tag"):
            rows = await store.logs.summary(group, since=since)
            found[group] = sorted(r.key for r in rows if r.key)
        return found

    async def index(self, request: Request) -> Response:
        """The filtered, searchable list."""
        filters = filters_of(request)
        try:
            query = log_query(filters, cursor=request.query_params.get("cursor") or None)
        except errors.ModelyardError as exc:
            filters, query, error = {}, LogQuery(limit=PAGE_SIZE), exc.message
        else:
            error = ""
        store = await self.bench.settled_store()
        page = await store.logs.query(query)
        return self.bench.page(
            request,
            "logs.html",
            logs=page.items,
            next_query=urlencode({**filters, "cursor": page.next_cursor}) if page.next_cursor else "",
            filters=filters,
            filter_query=urlencode(filters),
            total=await store.logs.count(query.model_copy(update={"cursor": None})),
            choices=await self._choices(),
            statuses=get_args(LogStatus),
            error=error,
            active="logs",
        )

    async def detail(self, request: Request) -> Response:
        """One request: bodies, attempts, timings, and replay."""
        store = await self.bench.settled_store()
        log = await store.logs.get(request.path_params["id"])
        if log is None:
            return self.bench.page(request, "not_found.html", status=404, what="log row", active="logs")
        models = await self.bench.models()
        return self.bench.page(
            request,
            "log_detail.html",
            log=log,
            answer=response_text(log),
            groups=model_groups(models),
            slots=SLOTS[:3],
            active="logs",
        )

    async def diff(self, request: Request) -> Response:
        """Two responses side by side, changed words marked."""
        ids = [i for i in request.query_params.getlist("id") if i][:2]
        store = await self.bench.store()
        logs = [await store.logs.get(i) for i in ids]
        found = [log for log in logs if log is not None]
        if len(found) != 2:
            return self.bench.page(request, "not_found.html", status=404, what="pair of log rows", active="logs")
        left, right = found
        rows = side_by_side(response_text(left), response_text(right))
        return self.bench.page(request, "log_diff.html", left=left, right=right, rows=rows, active="logs")

    async def export(self, request: Request) -> Response:
        """The filtered rows as JSONL or CSV."""
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise errors.BadRequestError("format must be jsonl or csv", param="format")
        query = log_query(filters_of(request))
        store = await self.bench.store()
        lines: AsyncIterator[str] = store.logs.export(query, fmt)  # type: ignore[arg-type]
        media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        headers = {"content-disposition": f'attachment; filename="modelyard-logs-{stamp}.{fmt}"'}
        return StreamingResponse((line.encode() async for line in lines), media_type=media, headers=headers)

    async def replay(self, request: Request) -> Response:
        """Send a logged request to other models; answer comparison columns."""
        store = await self.bench.store()
        log = await store.logs.get(request.path_params["id"])
        if log is None:
            raise errors.NotFoundError("no such log row")
        form = await request.form()
        models = [m for m in (chosen_model(form, slot) for slot in SLOTS) if m]
        original = log.served_model or log.requested_model
        if original and form.get("include_original"):
            models.insert(0, original)
        base = replay_request(log, models[0] if models else "-")
        group, columns = start_group(self.bench, base, models, REPLAY_TAG)
        return self.bench.page(request, "partials/compare_runs.html", group=group, columns=columns)
