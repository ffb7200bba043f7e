"""Turn errors into one readable line with the fix, and documented exit codes (no traceback unless --debug)."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from modelyard import errors

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_PROVIDER = 4
EXIT_INTERRUPTED = 130

_stderr = Console(stderr=True)


def exit_code_for(error: errors.ModelyardError) -> int:
    if isinstance(error, errors.ConfigError):
        return EXIT_CONFIG
    if isinstance(error, errors.BadRequestError | errors.NotFoundError):
        return EXIT_USAGE
    return EXIT_PROVIDER


def run_guarded(app: typer.Typer) -> int:
    """Run the typer app; modelyard errors become ``error: …`` on stderr and an exit code."""
    debug = "--debug" in sys.argv or os.environ.get("MODELYARD_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except errors.ModelyardError as exc:
        if debug:
            raise
        _stderr.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        _stderr.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_ERROR
    return EXIT_OK
