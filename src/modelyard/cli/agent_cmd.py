"""``modelyard agent``: run a tool-calling agent with live output, approve calls in the terminal, resume runs.

Register it with ``app.command("agent")(agent_cmd.agent)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import orjson
import typer
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from modelyard.agent import (
        AgentEvent,
        CommandAllowlist,
        Decision,
        FunctionTool,
        Limits,
        ModelFallback,
        PendingCall,
        ReasoningDelta,
        RunFinished,
        RunResult,
        StepFinished,
        StepStarted,
        SyncAgent,
        TextDelta,
        ToolCallStarted,
        ToolResult,
        mcp_server,
    )
    from modelyard.agent.tools import AgentTool, ToolSource
from modelyard.cli.options import parse_key_values, split_csv
from modelyard.cli.render import err, money, number, out, print_json, print_wide, when
from modelyard.cli.session import open_client
from modelyard.config import data_dir

Opt = typer.Option

_AGENT_NAMES = (
    "AgentEvent",
    "CommandAllowlist",
    "Decision",
    "FunctionTool",
    "Limits",
    "ModelFallback",
    "PendingCall",
    "ReasoningDelta",
    "RunFinished",
    "RunResult",
    "StepFinished",
    "StepStarted",
    "SyncAgent",
    "TextDelta",
    "ToolCallStarted",
    "ToolResult",
    "mcp_server",
)


def _load_agent() -> None:
    """Import ``modelyard.agent`` (MCP, jsonschema…) only when an agent command runs, so ``--help`` stays fast."""
    from modelyard import agent as api
    from modelyard.agent import tools

    globals().update({name: getattr(api, name) for name in _AGENT_NAMES})
    globals().update(AgentTool=tools.AgentTool, ToolSource=tools.ToolSource)


def agent(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Argument(metavar="PROMPT", help="The task.")] = None,
    model: Annotated[str | None, Opt("-m", "--model", metavar="MODEL", help="provider/model or alias.")] = None,
    tool: Annotated[list[str] | None, Opt("--tool", metavar="MODULE:NAME", help="A Python tool (repeat).")] = None,
    mcp: Annotated[list[str] | None, Opt("--mcp", metavar="CMD|URL", help="An MCP server (repeat).")] = None,
    fallback: Annotated[list[str] | None, Opt("--fallback", metavar="MODEL", help="Next model on 429/5xx.")] = None,
    system: Annotated[str | None, Opt("-s", "--system", metavar="TEXT", help="Instructions.")] = None,
    confirm: Annotated[list[str] | None, Opt("--confirm", metavar="TOOL", help="Ask before this tool ('all').")] = None,
    yes: Annotated[bool, Opt("-y", "--yes", help="Approve every call without asking.")] = False,
    max_steps: Annotated[int, Opt("--max-steps", min=1, metavar="N", help="Cap on model calls.")] = 20,
    max_tokens: Annotated[int | None, Opt("--max-tokens", min=1, metavar="N", help="Cap on tokens, all steps.")] = None,
    max_cost: Annotated[float | None, Opt("--max-cost", metavar="USD", help="Cap on cost, all steps.")] = None,
    max_time: Annotated[float | None, Opt("--max-time", metavar="SECONDS", help="Cap on wall time.")] = None,
    tool_choice: Annotated[str | None, Opt("--tool-choice", metavar="MODE", help="auto/required/none/a tool.")] = None,
    option: Annotated[list[str] | None, Opt("-o", "--option", metavar="KEY=VALUE", help="Model parameter.")] = None,
    resume: Annotated[str | None, Opt("--resume", metavar="RUN_ID", help="Continue a paused or stopped run.")] = None,
    approve: Annotated[list[str] | None, Opt("--approve", metavar="CALL_ID", help="Approve ('all').")] = None,
    deny: Annotated[list[str] | None, Opt("--deny", metavar="CALL_ID[=WHY]", help="Deny a pending call.")] = None,
    edit: Annotated[list[str] | None, Opt("--edit", metavar="CALL_ID=JSON", help="Run with these args.")] = None,
    ask: Annotated[bool | None, Opt("--ask/--no-ask", help="Ask about paused calls (default: on a terminal).")] = None,
    runs: Annotated[bool, Opt("--runs", help="List recent runs and exit.")] = False,
    metrics: Annotated[bool, Opt("--metrics", help="Tool-calling metrics per model and exit.")] = False,
    json_out: Annotated[bool, Opt("--json", help="Print the result as JSON (no live output).")] = False,
) -> None:
    """Run an agent: the model calls your tools until it answers, a cap stops it, or a call needs approval.

    \b
    Examples:
      modelyard agent -m openai/gpt-4o-mini --tool mytools:search "Find the release date of Python 3.13"
      modelyard agent -m fake/m --mcp "python server.py" --confirm all "Clean up /tmp"
      modelyard agent --resume run_... --tool mytools:search --approve all
    """
    _load_agent()
    if runs or metrics:
        _show_stored(ctx, metrics)
        return
    if not prompt and not resume:
        raise typer.BadParameter("give a PROMPT, or --resume RUN_ID", param_hint="PROMPT")
    limits = Limits(max_steps=max_steps, max_tokens=max_tokens, max_cost=max_cost, max_time=max_time)
    with _errlog() as errlog, open_client(ctx) as client:
        tools = _tools(tool or [], mcp or [], split_csv(confirm), errlog)
        options: dict[str, Any] = {
            "tools": tools, "instructions": system, "fallbacks": split_csv(fallback), "limits": limits,
            "tool_choice": tool_choice, "params": parse_key_values(option or []),
            "setup": {"cli": _setup_hint(tool or [], mcp or [])}, "approver": _approve_all if yes else None,
        }  # fmt: skip
        with SyncAgent(client, model, **options) as runner:
            decided = _decisions(approve or [], deny or [], edit or [])
            result = _drive(runner, prompt, resume, decided, limits if resume else None, json_out, ask)
    _report(result, json_out)


# ----- tools ------------------------------------------------------------------------------------------------
def _tools(specs: list[str], servers: list[str], confirm: list[str], errlog: TextIO) -> list[AgentTool | ToolSource]:
    """``--tool`` and ``--mcp`` as tools; ``--confirm`` marks the ones to ask about."""
    ask_all = "all" in confirm
    tools: list[AgentTool | ToolSource] = []
    for spec in specs:
        for found in _import_tools(spec):
            if ask_all or found.name in confirm:
                found.requires_approval = True
            tools.append(found)
    allowlist = CommandAllowlist(servers)  # the user's own flags are the only commands this run may start
    rule: Any = True if ask_all else dict.fromkeys(confirm, True)
    for server in servers:
        local = not server.startswith(("http://", "https://"))
        tools.append(mcp_server(server, allowlist, requires_approval=rule, **({"errlog": errlog} if local else {})))
    return tools


def _import_tools(spec: str) -> list[AgentTool]:
    """``module:name`` or ``path/to/file.py:name``: a function, an ``AgentTool``, or a list of them."""
    location, _, name = spec.rpartition(":")
    if not location or not name:
        raise typer.BadParameter(f"expected MODULE:NAME, got {spec!r}", param_hint="--tool")
    try:
        module = _load_module(location)
        found = getattr(module, name)
    except (ImportError, AttributeError, OSError) as exc:
        raise typer.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--tool") from None
    items = found if isinstance(found, list | tuple) else [found]
    return [item if isinstance(item, AgentTool) else FunctionTool(item) for item in items]


def _load_module(location: str) -> Any:
    if location.endswith(".py"):
        path = Path(location).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no Python file at {location}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(location)


def _setup_hint(specs: list[str], servers: list[str]) -> str:
    return " ".join([*(f"--tool {shlex.quote(s)}" for s in specs), *(f"--mcp {shlex.quote(s)}" for s in servers)])


@contextmanager
def _errlog() -> Iterator[TextIO]:
    """MCP servers' stderr goes to a log file in the data folder, not over the live display."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "mcp-servers.log").open("a", encoding="utf-8") as handle:
        yield handle


# ----- decisions ----------------------------------------------------------------------------------------------
def _decisions(approve: list[str], deny: list[str], edit: list[str]) -> dict[str, Decision]:
    """Decisions from flags, by call id (``all`` approves every pending call)."""
    decided: dict[str, Decision] = {c: Decision.approve(c) for c in split_csv(approve)}
    for item in deny:
        call_id, _, reason = item.partition("=")
        decided[call_id] = Decision.deny(call_id, reason or None)
    for item in edit:
        call_id, sep, raw = item.partition("=")
        try:
            arguments = orjson.loads(raw) if sep else None
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise typer.BadParameter(f"expected CALL_ID=JSON object, got {item!r}", param_hint="--edit")
        decided[call_id] = Decision.edit(call_id, arguments)
    return decided


def _approve_all(pending: PendingCall) -> Decision:
    return Decision.approve(pending.call_id)


def _for_pending(pending: list[PendingCall], decided: dict[str, Decision]) -> list[Decision]:
    everything = decided.get("all")
    return [
        decided.get(p.call_id) or Decision.approve(p.call_id) for p in pending if everything or p.call_id in decided
    ]


def _ask(pending: PendingCall) -> Decision:
    """One approval prompt in the terminal."""
    err.print(
        Text.assemble(
            ("approve ", "bold yellow"), f"{pending.name}({_json(pending.arguments)})  ", (pending.call_id, "dim")
        )
    )
    choice = typer.prompt("  [a]pprove, [d]eny or [e]dit", default="a").strip().lower()[:1]
    if choice == "d":
        reason = typer.prompt("  reason (sent to the model)", default="", show_default=False)
        return Decision.deny(pending.call_id, reason or None)
    if choice == "e":
        raw = typer.prompt("  arguments (JSON)", default=_json(pending.arguments))
        try:
            return Decision.edit(pending.call_id, orjson.loads(raw))
        except orjson.JSONDecodeError:
            err.print("  not JSON: denied", style="red")
            return Decision.deny(pending.call_id, "the user's edit was not valid JSON")
    return Decision.approve(pending.call_id)


# ----- the run ------------------------------------------------------------------------------------------------
def _drive(
    runner: SyncAgent,
    prompt: str | None,
    run_id: str | None,
    decided: dict[str, Decision],
    limits: Limits | None,
    quiet: bool,
    ask: bool | None,
) -> RunResult:
    """Run (or resume), showing each step; on a pause, ask in the terminal (``ask``; default: on a terminal)."""
    asking = sys.stdin.isatty() if ask is None else ask
    if run_id is not None:
        pending = runner.state(run_id).pending
        events = runner.stream_resume(run_id, _for_pending(pending, decided), limits=limits)
    else:
        events = runner.stream(prompt or "")
    while True:
        result = _show(events, quiet)
        if not result.paused or not asking:
            return result
        events = runner.stream_resume(result.run_id, [_ask(p) for p in result.pending])


def _show(events: Iterator[AgentEvent], quiet: bool) -> RunResult:
    """Render events as they come; returns the result of the last one."""
    text_open = False  # the model's text of a step is on stdout without a newline yet
    for event in events:
        if isinstance(event, RunFinished):
            if not quiet and text_open:
                out.out()
            return event.result
        if quiet:
            continue
        if isinstance(event, StepStarted | ToolCallStarted) and text_open:
            out.out()
            text_open = False
        text_open = text_open or isinstance(event, TextDelta)
        _render(event)
    raise RuntimeError("the run ended without a result")


def _render(event: AgentEvent) -> None:
    if isinstance(event, StepStarted):
        err.rule(f"step {event.step} · {event.model}", style="dim")
    elif isinstance(event, TextDelta):
        out.out(event.text, end="")
    elif isinstance(event, ReasoningDelta):
        err.print(event.text, style="dim", end="")
    elif isinstance(event, ToolCallStarted):
        err.print(Text.assemble("\n", (f"→ {event.name}", "cyan"), f"({_clip(event.arguments)})"))
    elif isinstance(event, ToolResult):
        mark = ("✓", "green") if event.record.ok else ("✗", "red")
        err.print(Text.assemble(mark, f" {event.record.name}: {_clip(event.record.output)}"))
    elif isinstance(event, ModelFallback):
        err.print(f"{event.from_model} failed ({event.error.type}); going on with {event.to_model}", style="yellow")
    elif isinstance(event, StepFinished):
        tokens = event.usage.total_tokens if event.usage else 0
        run_total = f"{event.total_usage.total_tokens} tokens, {money(event.total_cost)}"
        err.print(f"{tokens} tokens, {money(event.cost)} · run: {run_total}", style="dim")


def _report(result: RunResult, json_out: bool) -> None:
    if json_out:
        print_json(result.model_dump(mode="json", exclude={"messages"}))
    if result.stop_reason == "error":
        result.raise_for_error()
    if result.paused:
        calls = ", ".join(f"{p.name} ({p.call_id})" for p in result.pending)
        err.print(Text.assemble(("paused:", "yellow"), f" run {result.run_id} waits for a decision on {calls}"))
        err.print(f"resume: modelyard agent --resume {result.run_id} --approve all  (or --deny CALL_ID=why)")
    elif result.stop_reason != "final_answer":
        err.print(Text.assemble((result.explanation, "yellow"), f" (resume: modelyard agent --resume {result.run_id})"))
    if not json_out:
        err.print(
            f"run {result.run_id}: {len(result.steps)} steps, {len(result.tool_calls)} tool calls, "
            f"{result.usage.total_tokens} tokens, {money(result.cost)}",
            style="dim",
        )


def _clip(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# ----- stored runs ------------------------------------------------------------------------------------------
def _show_stored(ctx: typer.Context, metrics: bool) -> None:
    with open_client(ctx) as client:
        runner = SyncAgent(client)
        if metrics:
            _metrics_table(runner.metrics())
        else:
            _runs_table(runner.runs(limit=30))


def _runs_table(rows: Iterable[Any]) -> None:
    table = Table("run", "status", "stop", "model", "steps", "tool calls", "tokens", "cost", "updated")
    for r in rows:
        tokens = (r.prompt_tokens or 0) + (r.completion_tokens or 0)
        table.add_row(r.id, r.status, r.stop_reason or "-", r.model or "-", str(r.steps), str(r.tool_calls),
                      number(tokens), money(r.cost), when(r.updated_at))  # fmt: skip
    print_wide(table)


def _metrics_table(rows: Iterable[Any]) -> None:
    table = Table("model", "runs", "valid calls", "tool success", "steps/run", "cost/run", "answered")
    for m in rows:
        table.add_row(m.model, str(m.runs), _pct(m.tool_call_validity), _pct(m.tool_success_rate),
                      number(m.steps_per_run, 1), money(m.cost_per_run), _pct(m.completion_rate))  # fmt: skip
    print_wide(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
