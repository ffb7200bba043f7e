"""``modelyard serve``: the OpenAI- and Anthropic-compatible gateway and the workbench."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli.render import err
from modelyard.cli.session import require_local


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (default: settings, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 4000).")] = None,
    config: Annotated[str | None, typer.Option("--config", help="A modelyard.yaml to read.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each a full gateway).")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Serve /v1 (OpenAI and Anthropic routes), the admin API, /health, /ready, /metrics and the workbench at /.

    With no config it serves the embedded local model and logs to the SQLite file. Binding to anything but a
    loopback address requires a master key (MODELYARD_MASTER_KEY).
    """
    from modelyard.config import load_settings
    from modelyard.server.run import serve as run_server

    require_local(ctx, "serve", "it starts a server here; drop --server (or unset MODELYARD_SERVER)")
    settings = load_settings(config)
    bind_host = host or settings.server.host
    bind_port = settings.server.port if port is None else port
    url = f"http://{bind_host}:{bind_port}"
    err.print(f"modelyard on {url}: workbench {url}/, OpenAI API {url}/v1, default model {settings.default_model}")
    err.print("Ctrl-C stops it (in-flight requests get time to finish).")
    run_server(settings, bind_host, bind_port, workers=workers, log_level=log_level)
