"""``modelyard logs``: list, show, search and export request logs; ``modelyard cost``: spend as a table."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich import box
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from modelyard.cli.options import WHEN_HELP, parse_when
from modelyard.cli.render import err, money, number, out, print_json, print_wide, when
from modelyard.cli.session import open_client
from modelyard.errors import NotFoundError
from modelyard.storage.base import LogQuery, RequestLog

app = typer.Typer(help="Request logs: list, show, search and export.", no_args_is_help=True)


class Status(StrEnum):
    ok = "ok"
    error = "error"
    rejected = "rejected"
    client_disconnected = "client_disconnected"
    cache_hit = "cache_hit"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


Model = Annotated[str | None, typer.Option("--model", metavar="MODEL", help="Requested or served model.")]
StatusOpt = Annotated[Status | None, typer.Option("--status", help="Only requests with this outcome.")]
Since = Annotated[str | None, typer.Option("--since", metavar="WHEN", help=f"From this time: {WHEN_HELP}")]
Until = Annotated[str | None, typer.Option("--until", metavar="WHEN", help="Before this time (same forms as --since).")]
Key = Annotated[str | None, typer.Option("--key", metavar="CALLER", help="Caller: a virtual key id, or 'local'.")]
Tag = Annotated[str | None, typer.Option("--tag", metavar="TAG", help="Requests with this tag.")]
ConversationId = Annotated[
    str | None, typer.Option("--conversation", metavar="ID", help="Requests in this conversation.")
]
Limit = Annotated[int, typer.Option("-n", "--limit", metavar="N", min=1, max=10_000, help="At most this many rows.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def build_query(
    model: str | None = None,
    status: Status | None = None,
    since: str | None = None,
    until: str | None = None,
    key: str | None = None,
    tag: str | None = None,
    conversation: str | None = None,
    **extra: Any,
) -> LogQuery:
    """A ``LogQuery`` from the CLI filters."""
    fields = {
        "model": model,
        "status": status.value if status is not None else None,
        "since": parse_when(since),
        "until": parse_when(until),
        "caller": key,
        "tag": tag,
        "conversation_id": conversation,
    }
    return LogQuery.model_validate({**fields, **extra})


@app.command("list")
def list_logs(
    ctx: typer.Context,
    model: Model = None,
    status: StatusOpt = None,
    since: Since = None,
    until: Until = None,
    key: Key = None,
    tag: Tag = None,
    conversation: ConversationId = None,
    limit: Limit = 20,
    json_out: JsonOut = False,
) -> None:
    """The latest requests, newest first."""
    query = build_query(model, status, since, until, key, tag, conversation, limit=limit)
    with open_client(ctx) as client:
        page = client.admin.logs(query)
    _render_rows(page.items, json_out)


@app.command("search")
def search_logs(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="Words that must all appear in the prompt or the response.")
    ],
    model: Model = None,
    status: StatusOpt = None,
    since: Since = None,
    until: Until = None,
    key: Key = None,
    tag: Tag = None,
    conversation: ConversationId = None,
    limit: Limit = 20,
    json_out: JsonOut = False,
) -> None:
    """Full-text search over prompts and responses, newest first."""
    query = build_query(model, status, since, until, key, tag, conversation, limit=limit)
    with open_client(ctx) as client:
        page = client.admin.search_logs(text, query)
    _render_rows(page.items, json_out)


@app.command("prune")
def prune_logs(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="WHEN", help=f"Delete rows created before this: {WHEN_HELP}")
    ],
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Retention: delete request logs older than a point in time (runs in SQL, in batches)."""
    before = parse_when(older_than)
    if before is None:
        raise typer.BadParameter("give a time, e.g. 30d or 2026-01-01", param_hint="--older-than")
    if not yes:
        typer.confirm(f"Delete every request log created before {before.isoformat()}?", abort=True)
    with open_client(ctx) as client:
        deleted = client.admin.prune_logs(before)
    err.print(f"deleted {deleted} request log rows created before {before.isoformat()}")


@app.command("show")
def show_log(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request id, as `logs list` shows it.")],
    json_out: JsonOut = False,
) -> None:
    """One request in full: attempts, messages, response, usage and cost."""
    with open_client(ctx) as client:
        log = client.admin.log(request_id)
    if log is None:
        raise NotFoundError(f"no request {request_id!r}: see `modelyard logs list`", param="request_id")
    if json_out:
        print_json(log.model_dump(mode="json", exclude={"prompt_text", "response_text"}))
        return
    out.print(_detail(log))
    for message in log.messages or []:
        out.print(Panel(str(message.get("content") or ""), title=str(message.get("role")), title_align="left"))
    if log.response_text:
        out.print(Panel(log.response_text, title="response", title_align="left", border_style="green"))


@app.command("export")
def export_logs(
    ctx: typer.Context,
    format: Annotated[ExportFormat, typer.Option("-f", "--format", help="Output format.")] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write to this file (default: stdout).")
    ] = None,
    model: Model = None,
    status: StatusOpt = None,
    since: Since = None,
    until: Until = None,
    key: Key = None,
    tag: Tag = None,
    conversation: ConversationId = None,
) -> None:
    """Every matching request as JSON lines or CSV (newest first)."""
    fmt: Literal["jsonl", "csv"] = "csv" if format is ExportFormat.csv else "jsonl"
    query = build_query(model, status, since, until, key, tag, conversation)
    with open_client(ctx) as client:
        if output is None:
            for line in client.admin.export_logs(query, fmt):
                out.out(line, end="")
            return
        total = client.admin.count_logs(query)
        with output.open("w", encoding="utf-8", newline="") as handle, _progress() as progress:
            task = progress.add_task(f"exporting to {output}", total=total + (fmt == "csv"))  # csv: a header
            for line in client.admin.export_logs(query, fmt):
                handle.write(line)
                progress.advance(task)
    err.print(f"exported {total} requests to {output}")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
    )


def _render_rows(rows: list[RequestLog], json_out: bool) -> None:
    if json_out:
        print_json([r.model_dump(mode="json", exclude={"prompt_text", "response_text"}) for r in rows])
        return
    if not rows:
        err.print("no matching requests")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("time", "request id", "model", "status", "tokens", "cost", "ms"):
        right = name in ("tokens", "cost", "ms")
        table.add_column(name, no_wrap=name in ("time", "request id"), justify="right" if right else "left")
    for log in rows:
        table.add_row(
            log.created_at.astimezone().strftime("%m-%d %H:%M:%S"),
            log.request_id,
            log.served_model or log.requested_model or "-",
            log.status,
            f"{number(log.prompt_tokens)}/{number(log.completion_tokens)}",
            money(log.cost),
            number(log.latency_ms),
        )
    print_wide(table)


def _detail(log: RequestLog) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    attempts = ", ".join(f"{a.model} {a.status or a.error or ''}".strip() for a in log.attempts) or "-"
    rows = {
        "request id": log.request_id,
        "time": when(log.created_at),
        "model": f"{log.requested_model} -> {log.served_model or '-'}",
        "status": log.status + (f" ({log.error_type}: {log.error_message})" if log.error_type else ""),
        "attempts": attempts,
        "tokens": f"{number(log.prompt_tokens)} prompt + {number(log.completion_tokens)} completion",
        "cost": f"{money(log.cost)} ({log.cost_source})",
        "latency": f"{number(log.latency_ms)} ms (first token {number(log.ttft_ms)} ms)",
        "caller": log.caller,
        "tags": ", ".join(log.tags) or "-",
        "conversation": log.conversation_id or "-",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    return table
