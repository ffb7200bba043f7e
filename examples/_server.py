"""Run a modelyard server inside this process, on a free 127.0.0.1 port, for the examples that use HTTP clients.

In real use you would start it with ``modelyard serve`` (or ``./scripts/run.sh``) and point clients at it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from modelyard import Settings
from modelyard.server.app import create_app


@contextmanager
def running_server(settings: Settings | None = None) -> Iterator[str]:
    """Serve the gateway (OpenAI + Anthropic routes, admin API, workbench) and yield its base URL."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the modelyard server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
