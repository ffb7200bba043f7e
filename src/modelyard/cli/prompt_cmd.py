"""``modelyard prompt``: one prompt (or a template), streamed to the terminal and saved as a conversation."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli import conversations
from modelyard.cli.options import (
    ModelOption,
    ParamsOption,
    PromptArgument,
    SystemOption,
    parse_key_values,
    parse_text_values,
)
from modelyard.cli.render import err, out, print_json, until_first, usage_line, waiting_label
from modelyard.cli.session import open_client

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client


@dataclass
class PromptRequest:
    """What to send: model (None: the default), messages and parameters."""

    model: str | None
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


def prompt(
    ctx: typer.Context,
    text: PromptArgument = None,
    model: ModelOption = None,
    system: SystemOption = None,
    template: Annotated[
        str | None,
        typer.Option("-t", "--template", metavar="NAME", help="Prompt template; TEXT and stdin fill its input."),
    ] = None,
    variable: Annotated[
        list[str] | None, typer.Option("-v", "--var", metavar="KEY=VALUE", help="Template variable key=value.")
    ] = None,
    option: ParamsOption = None,
    continue_last: Annotated[bool, typer.Option("-c", "--continue", help="Continue the latest conversation.")] = False,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="Continue the conversation with this id.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole response object as JSON.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for the whole answer.")] = False,
    usage: Annotated[bool, typer.Option("-u", "--usage", help="Print token usage, cost and conversation id.")] = False,
) -> None:
    """Send one prompt and print the answer as it streams.

    Every prompt is saved as a conversation: -c continues the latest, --cid a given one.

    \b
    Examples:
      modelyard prompt "Explain CRDTs in two lines" -m openai/gpt-4o-mini -u
      git diff | modelyard prompt -t commit
      modelyard prompt -c "and in one sentence?"
    """
    piped = None if sys.stdin.isatty() else sys.stdin.read()
    content = "\n\n".join(p for p in (text, piped) if p)
    params = parse_key_values(option or [])
    with open_client(ctx) as client:
        request = _build(client, content, model, system, template, parse_text_values(variable or []), params)
        conversation = conversations.resolve(
            client, continue_last=continue_last, conversation_id=cid, model=request.model, system=system
        )
        conversation_id = conversation.id if conversation is not None else None
        request.model = request.model or (conversation.model if conversation is not None else None)
        call = {**request.params, "conversation_id": conversation_id}
        with conversations.dropped_if_empty(client, conversation):
            if json_out or no_stream:
                final_usage, info = _whole(client, request, call, json_out)
            else:
                final_usage, info = _stream(client, request, call)
    if usage:
        err.print(usage_line(final_usage, info, conversation_id), style="dim")


def _build(
    client: Client,
    content: str,
    model: str | None,
    system: str | None,
    template: str | None,
    values: dict[str, str],
    params: dict[str, Any],
) -> PromptRequest:
    """The messages for plain text, or a rendered template (``-m``, ``-s`` and ``-o`` win over its own)."""
    if template is None:
        if not content:
            raise typer.BadParameter("give a prompt as an argument or on stdin", param_hint="TEXT")
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        return PromptRequest(model, [*messages, {"role": "user", "content": content}], params)
    rendered = client.admin.template(template).render(values, input=content or None)
    messages = [m.model_dump(exclude_none=True) for m in rendered.messages]
    if system:
        messages = [{"role": "system", "content": system}, *(m for m in messages if m["role"] != "system")]
    return PromptRequest(model or rendered.model, messages, {**rendered.params, **params})


def _whole(client: Client, request: PromptRequest, call: dict[str, Any], json_out: bool) -> tuple[Any, Any]:
    response = client.chat(request.model, request.messages, **call)
    if json_out:
        print_json(response.model_dump(mode="json", exclude_none=True))
    else:
        _print_reasoning(response.choices[0].message.reasoning_content if response.choices else None)
        out.out(response.text)
    return response.usage, response.modelyard


def _stream(client: Client, request: PromptRequest, call: dict[str, Any]) -> tuple[Any, Any]:
    stream = client.stream(request.model, request.messages, **call)
    final_usage = None
    in_reasoning = False
    for chunk in until_first(stream, waiting_label(request.model)):
        if chunk.usage is not None:
            final_usage = chunk.usage
        for choice in chunk.choices[:1]:
            if choice.delta.reasoning_content:
                in_reasoning = True
                err.print(choice.delta.reasoning_content, style="dim", end="")
            if choice.delta.content:
                if in_reasoning:
                    err.print()
                    in_reasoning = False
                out.out(choice.delta.content, end="")
    out.out()
    return final_usage, stream.info


def _print_reasoning(reasoning: str | None) -> None:
    if reasoning:
        err.print(reasoning, style="dim")
