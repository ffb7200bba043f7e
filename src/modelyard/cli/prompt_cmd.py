"""``modelyard prompt``: one prompt, streamed to the terminal."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from modelyard.cli.options import parse_key_values
from modelyard.cli.session import open_client

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False)


def prompt(
    text: Annotated[str | None, typer.Argument(help="The prompt; read from stdin when piped.")] = None,
    model: Annotated[str | None, typer.Option("-m", "--model", help="provider/model or alias.")] = None,
    system: Annotated[str | None, typer.Option("-s", "--system", help="System prompt.")] = None,
    option: Annotated[list[str] | None, typer.Option("-o", "--option", help="Model parameter key=value.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole response object as JSON.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for the whole answer.")] = False,
    usage: Annotated[bool, typer.Option("-u", "--usage", help="Print token usage and cost.")] = False,
) -> None:
    """Send one prompt and print the answer as it streams."""
    piped = None if sys.stdin.isatty() else sys.stdin.read()
    content = "\n\n".join(p for p in (text, piped) if p)
    if not content:
        raise typer.BadParameter("give a prompt as an argument or on stdin", param_hint="TEXT")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    params = parse_key_values(option or [])
    with open_client() as client:
        if json_out or no_stream:
            response = client.chat(model, messages, **params)
            if json_out:
                _out.out(orjson.dumps(response.model_dump(exclude_none=True), option=orjson.OPT_INDENT_2).decode())
            else:
                _print_reasoning(response.choices[0].message.reasoning_content if response.choices else None)
                _out.out(response.text)
            final_usage, info = response.usage, response.modelyard
        else:
            final_usage, info = _stream(client, model, messages, params)
    if usage:
        _print_usage(final_usage, info)


def _stream(client: Any, model: str | None, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
    stream = client.stream(model, messages, **params)
    final_usage = None
    in_reasoning = False
    for chunk in stream:
        if chunk.usage is not None:
            final_usage = chunk.usage
        for choice in chunk.choices[:1]:
            if choice.delta.reasoning_content:
                in_reasoning = True
                _err.print(choice.delta.reasoning_content, style="dim", end="")
            if choice.delta.content:
                if in_reasoning:
                    _err.print()
                    in_reasoning = False
                _out.out(choice.delta.content, end="")
    _out.out()
    return final_usage, stream.info


def _print_reasoning(reasoning: str | None) -> None:
    if reasoning:
        _err.print(reasoning, style="dim")


def _print_usage(usage: Any, info: Any) -> None:
    if usage is None:
        _err.print("usage: not reported", style="dim")
        return
    cost = f", cost ${info.cost:.6f}" if info is not None and info.cost is not None else ""
    served = f" via {info.served_model}" if info is not None and info.served_model else ""
    _err.print(
        f"usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens{cost}{served}", style="dim"
    )
