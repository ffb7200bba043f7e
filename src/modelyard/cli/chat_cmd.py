"""``modelyard chat``: an interactive REPL with history, editing, Markdown answers and slash commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from modelyard.cli.chat_input import MULTI_END, MULTI_START, LineReader, make_reader, read_message
from modelyard.cli.chat_session import ChatSession
from modelyard.cli.errors import debug_enabled, describe
from modelyard.cli.options import ModelOption, SystemOption
from modelyard.cli.render import err, out
from modelyard.cli.session import Connection, connection_of, open_client
from modelyard.errors import ModelyardError

Handler = Callable[[ChatSession, str], bool]

COMMANDS: dict[str, tuple[str, str]] = {
    "/model": ("NAME", "switch model (the conversation goes on)"),
    "/system": ("TEXT", "set the system prompt (empty: clear it)"),
    "/template": ("NAME", "fill a template's input with each message (empty: stop)"),
    "/save": ("[TITLE]", "name the conversation and show its id (it is saved automatically)"),
    "/load": ("ID", "continue a saved conversation"),
    "/fork": ("", "continue in a copy of this conversation"),
    "/reset": ("", "start a new conversation"),
    "/usage": ("", "tokens used in this session and conversation"),
    "/cost": ("", "cost of this session and conversation"),
    "/retry": ("", "ask the last question again, replacing the answer"),
    "/help": ("", "this list"),
    "/exit": ("", "leave (Ctrl-D works too)"),
}


def chat(
    ctx: typer.Context,
    model: ModelOption = None,
    system: SystemOption = None,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="Resume the conversation with this id.")
    ] = None,
) -> None:
    """Chat interactively; the conversation is saved as you go.

    A line ending in \\ continues on the next line; !multi … !end encloses several lines.

    \b
    Commands inside the chat:
      /model NAME      /system TEXT   /template NAME   /save [TITLE]   /load ID
      /fork            /reset         /usage           /cost           /retry
      /help            /exit
    """
    with open_client(ctx) as client:
        session = ChatSession(client, model=model, system=system)
        if cid is not None:
            session.load(cid)
            session.model = model or session.model
            session.system = system or session.system
        err.print(
            Text(f"chatting with {session.model_name}; /help for commands, /exit or Ctrl-D to leave", style="dim")
        )
        repl(session, make_reader(), debug=debug_enabled(ctx), connection=connection_of(ctx))


def repl(
    session: ChatSession, reader: LineReader, *, debug: bool = False, connection: Connection | None = None
) -> None:
    """Read, answer, repeat, until /exit or the end of input. Errors are shown and the session goes on."""
    while True:
        try:
            text = read_message(reader)
        except KeyboardInterrupt:
            continue
        except EOFError:
            out.print()
            return
        if not text.strip():
            continue
        try:
            if not handle(session, text):
                return
        except KeyboardInterrupt:
            err.print(Text("(interrupted)", style="dim"))
        except ModelyardError as exc:
            err.print(Text.assemble(("error: ", "bold red"), describe(exc, connection)))
        except Exception as exc:  # the session outlives a bug in one turn; --debug shows it
            if debug:
                raise
            err.print(Text.assemble(("error: ", "bold red"), f"{type(exc).__name__}: {exc}"))


def handle(session: ChatSession, text: str) -> bool:
    """Run a slash command or send a message; False means leave."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        session.send(stripped[1:] if stripped.startswith("//") else text)
        return True
    name, _, argument = stripped.partition(" ")
    handler = HANDLERS.get(name)
    if handler is None:
        err.print(Text(f"unknown command {name}; /help lists them (start with // to send a slash)", style="yellow"))
        return True
    return handler(session, argument.strip())


def _show_help(session: ChatSession, _: str) -> bool:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for name, (argument, meaning) in COMMANDS.items():
        table.add_row(f"{name} {argument}".strip(), meaning)
    table.add_row(f"{MULTI_START} … {MULTI_END}", "type several lines as one message")
    table.add_row("line ending in \\", "continue the message on the next line")
    out.print(table)
    return True


def _needs(argument: str, usage: str) -> bool:
    if not argument:
        err.print(Text(f"usage: {usage}", style="yellow"))
    return bool(argument)


def _model(session: ChatSession, argument: str) -> bool:
    if _needs(argument, "/model NAME"):
        session.set_model(argument)
    else:
        out.print(f"model: {session.model_name}")
    return True


def _load(session: ChatSession, argument: str) -> bool:
    if _needs(argument, "/load ID"):
        session.load(argument)
    return True


def _then_stay(action: Callable[[ChatSession, str], object]) -> Handler:
    """A command that does something and keeps the REPL going."""

    def handler(session: ChatSession, argument: str) -> bool:
        action(session, argument)
        return True

    return handler


def _leave(session: ChatSession, argument: str) -> bool:
    return False


HANDLERS: dict[str, Handler] = {
    "/model": _model,
    "/system": _then_stay(lambda s, a: s.set_system(a)),
    "/template": _then_stay(lambda s, a: s.set_template(a)),
    "/save": _then_stay(lambda s, a: s.save(a or None)),
    "/load": _load,
    "/fork": _then_stay(lambda s, a: s.fork()),
    "/reset": _then_stay(lambda s, a: s.reset()),
    "/usage": _then_stay(lambda s, a: s.usage()),
    "/cost": _then_stay(lambda s, a: s.cost()),
    "/retry": _then_stay(lambda s, a: s.retry()),
    "/help": _show_help,
    "/exit": _leave,
    "/quit": _leave,
}
