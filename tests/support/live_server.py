"""Run the modelyard server for real (uvicorn on 127.0.0.1, its own thread and loop) for SDK tests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from modelyard.config import Settings
from modelyard.gateway import Gateway
from modelyard.server.app import create_app
from modelyard.server.protocol import HeaderTimeoutProtocol


class LiveServer:
    """``url`` is the base URL (no ``/v1``); ``gateway`` is the server's in-process Gateway."""

    def __init__(self, settings: Settings) -> None:
        self.app: Starlette = create_app(settings)
        self.gateway: Gateway = self.app.state.gateway
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            loop="asyncio",
            http=HeaderTimeoutProtocol,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="modelyard-test-server", daemon=True)
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.close()

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. to read its stores)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
