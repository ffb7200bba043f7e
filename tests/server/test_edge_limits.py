"""Edge limits: slow headers are cut off; over the concurrency limit a request gets 503 with Retry-After."""

from __future__ import annotations

import pathlib
import socket
import threading
import time

import httpx2

from modelyard.providers.fake import FakeReply
from tests.server.conftest import fake_of, server_settings
from tests.support.live_server import LiveServer

HELLO = {"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]}


def test_slow_headers_are_cut_off(tmp_path: pathlib.Path) -> None:
    from modelyard.server.protocol import HeaderTimeoutProtocol

    previous = HeaderTimeoutProtocol.header_timeout
    HeaderTimeoutProtocol.header_timeout = 1.0
    live = LiveServer(server_settings(tmp_path)).start()
    try:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finishes its headers
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the server closed the connection
            closed_after = time.monotonic() - started
        assert 0.5 < closed_after < 3
        assert httpx2.get(f"{live.url}/health").status_code == 200  # normal traffic unaffected
    finally:
        HeaderTimeoutProtocol.header_timeout = previous
        live.stop()


def test_over_the_concurrency_limit_is_503_with_retry_after(tmp_path: pathlib.Path) -> None:
    live = LiveServer(server_settings(tmp_path, server={"max_concurrency": 1})).start()
    try:
        fake_of(live).queue(FakeReply(text="slow", delay=1.5))
        slow = threading.Thread(target=lambda: httpx2.post(f"{live.url}/v1/chat/completions", json=HELLO, timeout=10))
        slow.start()
        time.sleep(0.4)
        busy = httpx2.post(f"{live.url}/v1/chat/completions", json=HELLO, timeout=10)
        slow.join()
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "service_unavailable_error"
        assert httpx2.get(f"{live.url}/health").status_code == 200  # health checks are exempt
    finally:
        live.stop()
