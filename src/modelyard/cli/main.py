"""The ``modelyard`` command. Each command group lives in its own module; commands parse, call, render."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelyard import __version__
from modelyard.cli import (
    agent_cmd,
    chat_cmd,
    compare_cmd,
    cost_cmd,
    db_cmd,
    doctor_cmd,
    keys_cmd,
    logs_cmd,
    models_cmd,
    prompt_cmd,
    routing_cmd,
    serve_cmd,
    templates_cmd,
)
from modelyard.cli.errors import GuardedGroup, exit_codes_epilog, run_guarded
from modelyard.cli.session import API_KEY_ENV, SERVER_ENV, remember

app = typer.Typer(
    name="modelyard",
    cls=GuardedGroup,
    help="One chat API, gateway and workbench over every LLM provider and a local model.",
    epilog=exit_codes_epilog(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
app.command("prompt")(prompt_cmd.prompt)
app.command("chat")(chat_cmd.chat)
app.command("compare")(compare_cmd.compare)
app.add_typer(logs_cmd.app, name="logs")
app.command("cost")(cost_cmd.cost)
app.command("models")(models_cmd.models)
app.add_typer(templates_cmd.app, name="templates")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(db_cmd.app, name="db")
app.add_typer(routing_cmd.app, name="routing")
app.command("doctor")(doctor_cmd.doctor)
app.command("serve")(serve_cmd.serve)
app.command("agent")(agent_cmd.agent)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelyard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=SERVER_ENV,
            metavar="URL",
            help="Send every command to this modelyard server instead of running the gateway in-process.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=API_KEY_ENV,
            metavar="KEY",
            help="The server's key for --server: its master key for logs, cost, keys and templates.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks (also: MODELYARD_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """One chat API, gateway and workbench over every LLM provider and a local model.

    Start with `modelyard doctor`, then `modelyard prompt "hello"` (the local model needs no key).
    With --server URL every command goes through that server, with the same output.
    """
    ctx.meta["debug"] = debug
    remember(ctx, server, api_key)


def main() -> None:
    """Entry point: run the app, turning modelyard errors into one readable line and an exit code."""
    sys.exit(run_guarded(app))
