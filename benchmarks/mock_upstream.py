"""A fast OpenAI-compatible mock upstream for the benchmarks (aiohttp, uvloop, its own process, 127.0.0.1 only).

``POST /v1/chat/completions`` answers a fixed ``chat.completion`` (pre-encoded bytes), or, with ``"stream": true``,
``--chunks`` (default 20) ``chat.completion.chunk`` frames, one usage chunk and ``data: [DONE]``, each frame
written separately (like a real upstream, which sends tokens as they come). ``GET /health`` answers ``ok``.
By default it answers at once. ``--first-delay-ms`` waits before the answer (or the first frame) and
``--chunk-delay-ms`` between frames, as a model does while it generates; the pacing is the upstream's own
(a sleep in this process), whatever the client does meanwhile.

Run: .venv/bin/python benchmarks/mock_upstream.py --port 9100   (prints ``READY <port>`` once listening)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import orjson
from aiohttp import web

CREATED = 1_700_000_000
WORDS = [
    "Hello",
    " there",
    "!",
    " This",
    " is",
    " a",
    " fixed",
    " answer",
    " from",
    " the",
    " mock",
    " upstream",
    ",",
    " twenty",
    " chunks",
    " long",
    " for",
    " the",
    " benchmark",
    ".",
]


def completion_bytes() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": CREATED,
            "model": "mock-1",
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)},
        }
    )


def stream_frames(chunks: int) -> list[bytes]:
    base = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "mock-1",
        "system_fingerprint": None,
    }
    frames = []
    for i in range(chunks):
        delta: dict[str, object] = {"content": WORDS[i % len(WORDS)]}
        if i == 0:
            delta["role"] = "assistant"
        last = i == chunks - 1
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}
        frames.append(b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    frames.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def build_app(chunks: int, first_delay: float = 0.0, chunk_delay: float = 0.0) -> web.Application:
    body = completion_bytes()
    frames = stream_frames(chunks)

    async def chat(request: web.Request) -> web.StreamResponse:
        payload = orjson.loads(await request.read())
        if first_delay:
            await asyncio.sleep(first_delay)
        if not payload.get("stream"):
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for i, frame in enumerate(frames):
            if chunk_delay and i:
                await asyncio.sleep(chunk_delay)
            await response.write(frame)
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


async def serve(port: int, chunks: int, first_delay: float = 0.0, chunk_delay: float = 0.0) -> None:
    runner = web.AppRunner(build_app(chunks, first_delay, chunk_delay), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--first-delay-ms", type=float, default=0.0, help="wait before answering")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="wait between stream frames")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port, args.chunks, args.first_delay_ms / 1000, args.chunk_delay_ms / 1000))


if __name__ == "__main__":
    sys.exit(main())
