"""``modelyard compare``: one prompt on several models at once, answers side by side with speed and cost."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markdown import Markdown
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from modelyard.cli.errors import describe, exit_code_for
from modelyard.cli.options import ParamsOption, PromptArgument, SystemOption, parse_key_values
from modelyard.cli.render import err, money, number, out, print_json
from modelyard.cli.session import Connection, connection_of, open_client
from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client


@dataclass
class Result:
    """One model's answer and how it went."""

    model: str
    text: str = ""
    served_model: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    cost: float | None = None
    error: str | None = None
    exit_code: int = 0


def compare(
    ctx: typer.Context,
    text: PromptArgument = None,
    models: Annotated[
        list[str] | None, typer.Option("-m", "--model", metavar="MODEL", help="A model to compare (repeat it).")
    ] = None,
    system: SystemOption = None,
    option: ParamsOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Run one prompt on several models at once; answers side by side.

    Each column shows latency, tokens, tokens/s and cost. Exits non-zero when a model failed.

    \b
    Example:
      modelyard compare -m openai/gpt-4o-mini -m local/smollm2 "Explain CRDTs in one line"
    """
    piped = None if sys.stdin.isatty() else sys.stdin.read()
    content = "\n\n".join(p for p in (text, piped) if p)
    if not content:
        raise typer.BadParameter("give a prompt as an argument or on stdin", param_hint="TEXT")
    chosen = list(dict.fromkeys(models or []))
    if len(chosen) < 2:
        raise typer.BadParameter("compare needs at least two different models: -m A -m B", param_hint="--model")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    params = parse_key_values(option or [])
    with open_client(ctx) as client:
        client.warm_up()  # open the database (or the connection) first: latencies measure the models
        results = _run_all(client, chosen, messages, params, connection_of(ctx))
    if json_out:
        print_json([{k: v for k, v in asdict(r).items() if k != "exit_code"} for r in results])
    else:
        out.print(_table(results))
    failed = [r for r in results if r.error is not None]
    if failed:
        raise typer.Exit(failed[0].exit_code)


def _run_all(
    client: Client, models: list[str], messages: list[dict[str, Any]], params: dict[str, Any], connection: Connection
) -> list[Result]:
    """Every model at once (one thread each, all on the client's event loop), with a progress line per model."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress, ThreadPoolExecutor(max_workers=len(models)) as pool:
        tasks = {model: progress.add_task(f"{model}: waiting", total=None) for model in models}
        call = Call(client, messages, params, connection)
        futures = [pool.submit(_run_one, call, m, progress, tasks[m]) for m in models]
        return [f.result() for f in futures]


@dataclass
class Call:
    """What every model is sent, and through which client."""

    client: Client
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    connection: Connection


def _run_one(call: Call, model: str, progress: Progress, task: TaskID) -> Result:
    result = Result(model=model)
    started = time.monotonic()
    parts: list[str] = []
    try:
        stream = call.client.stream(model, call.messages, **call.params, tags=["compare"])
        for chunk in stream:
            if chunk.usage is not None:
                result.prompt_tokens = chunk.usage.prompt_tokens
                result.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices[:1]:
                if choice.delta.content:
                    if result.ttft_ms is None:
                        result.ttft_ms = round((time.monotonic() - started) * 1000, 1)
                    parts.append(choice.delta.content)
                    progress.update(task, description=f"{model}: {len(parts)} chunks")
        info = stream.info
        result.served_model, result.cost = (info.served_model, info.cost) if info is not None else (None, None)
    except ModelyardError as exc:
        result.error, result.exit_code = describe(exc, call.connection), exit_code_for(exc)
    elapsed = time.monotonic() - started
    result.text, result.latency_ms = "".join(parts), round(elapsed * 1000, 1)
    generation = elapsed - (result.ttft_ms or 0) / 1000
    if result.completion_tokens and generation > 0:
        result.tokens_per_second = round(result.completion_tokens / generation, 1)
    progress.update(task, description=f"{model}: {'failed' if result.error else 'done'}")
    return result


def _table(results: list[Result]) -> Table:
    table = Table(show_lines=True, expand=True)
    for result in results:
        table.add_column(result.model, ratio=1, overflow="fold")
    table.add_row(
        *(Text.assemble(("error: ", "red"), r.error) if r.error else Markdown(r.text or "_(empty)_") for r in results)
    )
    table.add_row(*(_stats(r) for r in results))
    return table


def _stats(result: Result) -> Text:
    served = f"served by {result.served_model}\n" if result.served_model and result.served_model != result.model else ""
    return Text(
        f"{served}latency {number(result.latency_ms)} ms (first token {number(result.ttft_ms)} ms)\n"
        f"tokens {number(result.prompt_tokens)} in / {number(result.completion_tokens)} out, "
        f"{number(result.tokens_per_second, 1)} tok/s\ncost {money(result.cost)}",
        style="dim",
    )
