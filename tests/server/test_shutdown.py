"""SIGTERM: in-flight streams finish, new connections are refused, logs are flushed, exit code 0."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.providers.cases_openai import STREAM
from tests.server.test_faults import Upstream
from tests.support.scripted_server import Reply, ScriptedServer

STREAMS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def slow_upstream() -> Iterator[ScriptedServer]:
    up = Upstream()
    up.server.script(Reply(sse=STREAM, chunk_delay=0.4))  # about 2.4 s per stream
    yield up.server
    up.stop()


def test_sigterm_drains_streams_then_exits_cleanly(tmp_path: pathlib.Path, slow_upstream: ScriptedServer) -> None:
    port = _free_port()
    db = tmp_path / "shutdown.db"
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": f"sqlite:///{db}",
        "MODELYARD_SPILL_DIR": str(tmp_path / "spill"),
        "MODELYARD_PROVIDERS__UP__BASE_URL": slow_upstream.url,
        "MODELYARD_SERVER__DRAIN_SECONDS": "20",
    }
    code = (
        f"from modelyard.config import load_settings; from modelyard.server.run import serve; "
        f"serve(load_settings(), '127.0.0.1', {port})"
    )
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        results: list[bytes] = []

        def one() -> None:
            body = {"model": "up/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx2.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
                results.append(b"".join(response.iter_bytes()))

        threads = [threading.Thread(target=one) for _ in range(STREAMS)]
        for thread in threads:
            thread.start()
        while len(slow_upstream.requests) < STREAMS:
            time.sleep(0.02)
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx2.TransportError):
            httpx2.get(f"{url}/health", timeout=1)
        refused_after = time.monotonic() - signalled
        for thread in threads:
            thread.join(30)
        exit_code = server.wait(35)
        exited_after = time.monotonic() - signalled
    finally:
        if server.poll() is None:
            server.kill()
    assert refused_after < 1.6
    assert exit_code == 0 and exited_after < 35
    assert len(results) == STREAMS and all(r.endswith(b"data: [DONE]\n\n") for r in results)
    rows = sqlite3.connect(db).execute("SELECT status, count(*) FROM request_logs GROUP BY status").fetchall()
    assert rows == [("ok", STREAMS)]


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")
