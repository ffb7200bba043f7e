"""A bare aiohttp relay: the floor a gateway's CPU per request is compared with (issue 4, item 10).

aiohttp server + one shared aiohttp client session (keep-alive pool) to the upstream, uvloop. It parses the
request body once (orjson, to see ``stream``), forwards it unchanged, and copies the upstream's answer back:
the whole body, or the SSE stream chunk by chunk as it arrives. No validation, no logging, no translation.

Run: .venv/bin/python benchmarks/aiohttp_relay.py --port 9200 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import aiohttp
import orjson
from aiohttp import web


def build_app(upstream: str) -> web.Application:
    url = upstream.rstrip("/") + "/chat/completions"
    state: dict[str, aiohttp.ClientSession] = {}

    async def on_startup(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=None)
        state["session"] = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600))

    async def on_cleanup(app: web.Application) -> None:
        await state["session"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        stream = bool(orjson.loads(raw).get("stream"))
        headers = {"Content-Type": "application/json"}
        async with state["session"].post(url, data=raw, headers=headers) as upstream_response:
            if not stream or upstream_response.status != 200:
                body = await upstream_response.read()
                return web.Response(
                    body=body, status=upstream_response.status, content_type=upstream_response.content_type
                )
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(port: int, upstream: str) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
