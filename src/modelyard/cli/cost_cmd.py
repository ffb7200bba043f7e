"""``modelyard cost``: requests, tokens and spend grouped by model, key, day, tag or provider."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import typer
from rich.table import Table

from modelyard.cli.options import WHEN_HELP, parse_when
from modelyard.cli.render import err, money, number, out, print_json
from modelyard.cli.session import open_client
from modelyard.storage.base import SummaryRow


class GroupBy(StrEnum):
    model = "model"
    key = "key"
    day = "day"
    tag = "tag"
    provider = "provider"


_COLUMNS: dict[GroupBy, Literal["model", "caller", "day", "tag", "provider"]] = {
    GroupBy.model: "model",
    GroupBy.key: "caller",
    GroupBy.day: "day",
    GroupBy.tag: "tag",
    GroupBy.provider: "provider",
}


def cost(
    ctx: typer.Context,
    by: Annotated[GroupBy, typer.Option("--by", help="Group the totals by this.")] = GroupBy.model,
    since: Annotated[str | None, typer.Option("--since", metavar="WHEN", help=f"From this time: {WHEN_HELP}")] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="WHEN", help="Before this time (same forms as --since).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Spend by model, key, day, tag or provider, from the request logs.

    Each row has requests, tokens, cost, errors and p50/p95 latency."""
    start, end = parse_when(since), parse_when(until)
    with open_client(ctx) as client:
        rows = client.admin.cost(_COLUMNS[by], since=start, until=end)
    if json_out:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        err.print("no requests logged in that period")
        return
    out.print(_table(by, rows))


def _table(by: GroupBy, rows: list[SummaryRow]) -> Table:
    table = Table(title=f"Cost by {by.value}", title_justify="left", show_footer=by is not GroupBy.tag)  # tags overlap
    total = SummaryRow(
        key="total",
        requests=sum(r.requests for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cost=sum(r.cost for r in rows),
        errors=sum(r.errors for r in rows),
    )
    footer = _cells(total)
    headers = (by.value, "requests", "prompt tok", "completion tok", "cost", "errors", "p50 ms", "p95 ms")
    for i, name in enumerate(headers):
        table.add_column(name, footer=footer[i], justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*_cells(row))
    return table


def _cells(row: SummaryRow) -> list[str]:
    return [
        row.key or "-",
        number(row.requests),
        number(row.prompt_tokens),
        number(row.completion_tokens),
        money(row.cost),
        number(row.errors),
        number(row.p50_latency_ms),
        number(row.p95_latency_ms),
    ]
