"""A bare ASGI relay on uvicorn (uvloop + httptools): the floor of the server stack modelyard runs on.

The same work as ``aiohttp_relay.py`` (parse the body once to see ``stream``, forward it, copy the answer back
whole or chunk by chunk) written as a plain ASGI callable: no Starlette, no validation, no logging. Its CPU per
request against ``aiohttp_relay.py``'s shows what the server stack itself costs; the gateway's CPU above it is
modelyard's own work.

Run: .venv/bin/python benchmarks/asgi_relay.py --port 9201 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson
import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]


def build_app(upstream: str) -> Any:
    url = upstream.rstrip("/") + "/chat/completions"
    state: dict[str, aiohttp.ClientSession] = {}

    async def lifespan(receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=None)
                timeout = aiohttp.ClientTimeout(total=600)
                state["session"] = aiohttp.ClientSession(connector=connector, timeout=timeout)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await state["session"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        stream = bool(orjson.loads(body).get("stream"))
        headers = {"Content-Type": "application/json"}
        async with state["session"].post(url, data=body, headers=headers) as upstream_response:
            if not stream or upstream_response.status != 200:
                data = await upstream_response.read()
                content_type = upstream_response.headers.get("Content-Type", "application/json").encode()
                start = [(b"content-type", content_type), (b"content-length", str(len(data)).encode())]
                await send({"type": "http.response.start", "status": upstream_response.status, "headers": start})
                await send({"type": "http.response.body", "body": data})
                return
            start = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            async for chunk in upstream_response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9201)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    args = parser.parse_args(argv)
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
