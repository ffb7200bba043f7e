"""A real third-party upstream: llama-cpp-python's own OpenAI-compatible server, through the ``llamacpp`` row."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest

from modelyard.config import ProviderSettings
from tests.server.conftest import server_settings
from tests.support.live_server import LiveServer

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python's server extra is part of the test install")
pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    from modelyard.providers.local_models import default_model_path

    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--model_alias",
            "smollm2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx2.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway_server(tmp_path: pathlib.Path, llama_server: str) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path, providers={"llamacpp": ProviderSettings(base_url=llama_server)})
    server = LiveServer(settings).start()
    yield server
    server.stop()


def test_chat_and_stream_through_llamacpp_row(gateway_server: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=f"{gateway_server.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Say hello in one word."}]
    completion = sdk.chat.completions.with_raw_response.create(
        model="llamacpp/smollm2",
        messages=messages,
        max_tokens=8,
        temperature=0,
        seed=1,  # type: ignore[arg-type]
    )
    parsed = completion.parse()
    assert parsed.choices[0].message.content
    assert parsed.usage is not None and parsed.usage.completion_tokens <= 8
    assert completion.headers["x-modelyard-provider"] == "llamacpp"
    chunks = list(
        sdk.chat.completions.create(
            model="llamacpp/smollm2",
            messages=messages,
            max_tokens=8,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    # llama-cpp-python's server sends no usage in streams: modelyard still delivers it, marked estimated.
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_n_is_emulated_for_llamacpp_plain_and_streamed(gateway_server: LiveServer) -> None:
    """llama.cpp's server ignores ``n``: the row drops it and modelyard makes ``n`` calls (or merges ``n`` streams)."""
    sdk = openai.OpenAI(base_url=f"{gateway_server.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Name a colour."}]
    plain = sdk.chat.completions.create(model="llamacpp/smollm2", messages=messages, max_tokens=6, n=2)  # type: ignore[arg-type]
    assert [c.index for c in plain.choices] == [0, 1]
    assert all(c.message.content for c in plain.choices)
    chunks = list(
        sdk.chat.completions.create(
            model="llamacpp/smollm2",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=6,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finished = {c.index: c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason}
    assert set(finished) == {0, 1}
    assert len({chunk.id for chunk in chunks}) == 1
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 6  # both answers counted (6 tokens at most each)
