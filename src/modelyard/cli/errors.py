"""Turn errors into one readable line with the fix, and documented exit codes (no traceback unless --debug)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from modelyard import errors
from modelyard.cli.session import API_KEY_ENV, Connection, connection_of

if TYPE_CHECKING:
    from typer._click.core import Context  # typer's own click: what TyperGroup.invoke is given

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_PROVIDER = 4
EXIT_CHECKS = 5
EXIT_INTERRUPTED = 130

#: The exit codes, as documented in ``modelyard --help``.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error (run with --debug for the traceback)",
    EXIT_USAGE: "bad usage or request: unknown model, template, conversation or option",
    EXIT_CONFIG: "configuration problem: missing or refused API key, invalid modelyard.yaml, missing local model",
    EXIT_PROVIDER: "the provider failed: rate limit, timeout, connection or upstream error",
    EXIT_CHECKS: "modelyard doctor found something broken",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

DEBUG_ENV = "MODELYARD_DEBUG"

_stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def exit_codes_epilog() -> str:
    """The exit-code table for the ``--help`` epilog (one line per code)."""
    lines = [f"{code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]
    return "Exit codes:\n\n\b\n" + "\n".join(lines)


def exit_code_for(error: errors.ModelyardError) -> int:
    if isinstance(error, errors.ConfigError):
        return EXIT_CONFIG
    if isinstance(error, errors.AuthenticationError | errors.PermissionDeniedError) and error.provider is None:
        return EXIT_CONFIG  # our own server refused the key (a provider refusing ours names the provider)
    if isinstance(error, errors.BadRequestError | errors.NotFoundError):
        return EXIT_USAGE
    return EXIT_PROVIDER


def describe(error: errors.ModelyardError, connection: Connection | None = None) -> str:
    """One line: the message, where it happened (unless the message says it already) and a suggestion.

    Close model names come from the gateway the command used: in-process, or the server of ``connection``.
    """
    text = error.message
    where = "/".join(x for x in (error.provider, error.model) if x)
    if where and not all(part in text for part in (error.provider, error.model) if part):
        text = f"{text} ({where})"
    if isinstance(error, errors.NotFoundError) and error.param == "model" and error.model:
        from modelyard.cli.suggest import suggest_models

        close = suggest_models(error.model, connection)
        if close:
            text += f"; did you mean {', '.join(close)}?"
    if connection is not None and connection.remote and error.provider is None and "master key" not in text:
        text += _key_hint(error)
    return " ".join(text.split())


def _key_hint(error: errors.ModelyardError) -> str:
    """What to do when the --server refused the key."""
    if isinstance(error, errors.AuthenticationError):
        return f"; pass the server's key with --api-key or {API_KEY_ENV}"
    if isinstance(error, errors.PermissionDeniedError):
        return f"; this needs the server's master key (--api-key or {API_KEY_ENV})"
    return ""


def print_error(message: str) -> None:
    _stderr.print(Text.assemble(("error:", "bold red"), " ", message))


def debug_enabled(ctx: Context | None = None) -> bool:
    if os.environ.get(DEBUG_ENV) == "1":
        return True
    return bool(ctx is not None and ctx.find_root().meta.get("debug"))


class GuardedGroup(TyperGroup):
    """The root command group: a modelyard error becomes ``error: …`` on stderr and its exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors, --help, exits: the parser's own
            raise
        except errors.ModelyardError as exc:
            if debug_enabled(ctx):
                raise
            print_error(describe(exc, connection_of(ctx)))
            ctx.exit(exit_code_for(exc))
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if debug_enabled(ctx):
                raise
            print_error(f"{type(exc).__name__}: {exc} (run with --debug for details)")
            ctx.exit(EXIT_ERROR)


def run_guarded(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the typer app (``--debug`` may appear anywhere) and return its exit code."""
    import sys

    argv = list(sys.argv[1:] if args is None else args)
    if "--debug" in argv:
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    try:
        app(args=argv, prog_name="modelyard")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return EXIT_OK
