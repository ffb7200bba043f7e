"""The floor under issue 4's CPU bar: the least a gateway doing modelyard's per-request work can cost in Python.

A bare ASGI app on uvicorn (uvloop + httptools), like ``asgi_relay.py``, that does on every chat request what
modelyard must: validate the body into modelyard's own ``ChatRequest``, pick the deployment, forward the request
with aiohttp, parse the answer, count its cost from the usage, add the gateway's headers, count it in Prometheus
metrics, look for secrets with modelyard's ``Redactor`` and log one row per request into modelyard's own SQLite
schema (migrated by modelyard, full-text index included) from a thread, in batches. A stream is passed on frame by
frame, each re-encoded with the model name the client asked for, and its delivered text is collected for the row.
Nothing else: no middleware chain, no retries, no limits, no routing table. It is not a product: it shows what a
rewrite of modelyard's request path could reach, and ``instructions.py --served --targets relay,lean,modelyard``
sets it beside the relay and modelyard.

Run: .venv/bin/python benchmarks/lean_floor.py --port 9202 --upstream http://127.0.0.1:9100/v1 --db /tmp/lean.db
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import queue
import sqlite3
import threading
import time
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import aiohttp
import orjson
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram

from modelyard.pipeline import new_request_id
from modelyard.redaction import Redactor
from modelyard.server.app import YOUNG_GC_THRESHOLD
from modelyard.storage.schema import INDEX_LOGS_AFTER, LAST_LOG_ID
from modelyard.storage.sql_logs import LOG_COLUMNS
from modelyard.types.chat import ChatRequest

Scope = dict[str, Any]
PRICE_IN, PRICE_OUT = 0.15 / 1e6, 0.60 / 1e6  # per token
ROW_DEFAULTS: dict[str, Any] = dict.fromkeys(LOG_COLUMNS)
ROW_DEFAULTS.update(caller="local", cost_source="computed", stream=0, cache_hit=0, fallback_used=0, tags="[]")
ROW_DEFAULTS.update(metadata="{}", attempts="[]", params="{}")
_row_values = itemgetter(*LOG_COLUMNS)
FLUSH_INTERVAL = 0.2  # seconds rows gather before a batch is written, as in modelyard's writer
ROWS_PER_INSERT = 64  # rows per INSERT statement: one sqlite3_step (one GIL hand-off) for many rows, as modelyard


@functools.cache
def insert_sql(rows: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * len(LOG_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO request_logs ({', '.join(LOG_COLUMNS)}) VALUES {values} ON CONFLICT (request_id) DO NOTHING"


def connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def write_batch(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """One transaction: the rows, then their full-text index entries (as modelyard's writer does)."""
    connection.execute("BEGIN")
    last_id = connection.execute(LAST_LOG_ID).fetchone()[0]
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        connection.execute(insert_sql(len(chunk)), [value for row in chunk for value in row])
    connection.execute(INDEX_LOGS_AFTER, (last_id,))
    connection.execute("COMMIT")


class ThreadRowWriter:
    """Rows (tuples in column order) inserted by one thread in batches, as modelyard's writer does."""

    def __init__(self, path: str) -> None:
        self.rows: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self.thread.start()

    def put(self, row: tuple[Any, ...]) -> None:
        self.rows.put(row)

    async def close(self) -> None:
        self.rows.put(None)
        await asyncio.to_thread(self.thread.join)

    def _run(self, path: str) -> None:
        connection = connect(path)
        while True:
            batch = [self.rows.get()]
            time.sleep(FLUSH_INTERVAL)  # rows gather, as modelyard's writer lets them
            while not self.rows.empty():
                batch.append(self.rows.get())
            rows = [row for row in batch if row is not None]
            write_batch(connection, rows)
            if len(rows) < len(batch):
                connection.close()
                return


class LoopRowWriter:
    """The same batches written on the event loop's own thread: no thread to hand the GIL to, but each batch's
    insert holds up every request in flight while it runs."""

    def __init__(self, path: str) -> None:
        self.connection = connect(path)
        self.rows: list[tuple[Any, ...]] = []
        self.task: asyncio.Task[None] | None = None

    def put(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL)
        self.flush()

    def flush(self) -> None:
        rows, self.rows, self.task = self.rows, [], None
        if rows:
            write_batch(self.connection, rows)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.flush()
        self.connection.close()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("requests", "requests", ["model", "status"], registry=self.registry)
        self.latency = Histogram("latency_seconds", "latency", ["model"], registry=self.registry)

    def count(self, model: str, started: float) -> None:
        self.requests.labels(model, "ok").inc()
        self.latency.labels(model).observe(time.monotonic() - started)


class LeanGateway:
    def __init__(self, upstream: str, db: str, log_requests: bool = True, log_on_loop: bool = False) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.session: aiohttp.ClientSession | None = None
        self.writer: ThreadRowWriter | LoopRowWriter = LoopRowWriter(db) if log_on_loop else ThreadRowWriter(db)
        self.log_requests = log_requests
        self.redactor = Redactor()
        self.metrics = Metrics()
        self.deployments = {"up/x": ("up", "x")}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        started, created = time.monotonic(), time.time()
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        data = orjson.loads(body)
        chat = ChatRequest.model_validate(data)
        provider, served = self.deployments[chat.model]
        data["model"] = served
        request_id = new_request_id()
        assert self.session is not None
        async with self.session.post(
            self.url, data=orjson.dumps(data), headers={"Content-Type": "application/json"}
        ) as upstream:
            if chat.stream:
                text, usage, finish = await self.relay_stream(upstream, send, chat.model, request_id, provider, started)
                response: dict[str, Any] | None = None
            else:
                response = orjson.loads(await upstream.read())
                choice = response["choices"][0]
                text, usage, finish = choice["message"].get("content") or "", response["usage"], choice["finish_reason"]
                cost = usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT
                response["model"] = chat.model
                out = orjson.dumps(response)
                headers = self.headers(request_id, provider, cost, started)
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": out})
        latency = time.monotonic() - started
        self.metrics.count(chat.model, started)
        if self.log_requests:
            self.log(chat, data, response, text, usage, finish, request_id, provider, created, latency)

    def headers(self, request_id: str, provider: str, cost: float | None, started: float) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-request-id", request_id.encode()),
            (b"x-modelyard-provider", provider.encode()),
            (b"x-modelyard-overhead-ms", f"{(time.monotonic() - started) * 1000:.2f}".encode()),
        ]
        if cost is not None:
            headers.append((b"x-modelyard-cost", f"{cost:.8f}".encode()))
        return headers

    async def relay_stream(
        self,
        upstream: aiohttp.ClientResponse,
        send: Any,
        model: str,
        request_id: str,
        provider: str,
        started: float,
    ) -> tuple[str, dict[str, Any] | None, str | None]:
        # A stream's cost is known only at its end, after the headers: none is sent, as modelyard sends none.
        headers = [(b"content-type", b"text/event-stream"), *self.headers(request_id, provider, None, started)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        async for raw in upstream.content.iter_any():
            frames: list[bytes] = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data: {"):
                    chunk = orjson.loads(line[6:])
                    for choice in chunk.get("choices") or ():
                        parts.append(choice["delta"].get("content") or "")
                        finish = choice.get("finish_reason") or finish
                    usage = chunk.get("usage") or usage
                    chunk["model"] = model  # the name the client asked for, as modelyard sends it
                    frames += (b"data: ", orjson.dumps(chunk), b"\n\n")
                elif line.startswith(b"data: [DONE]"):
                    frames.append(b"data: [DONE]\n\n")
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return "".join(parts), usage, finish

    def log(
        self,
        chat: ChatRequest,
        data: dict[str, Any],
        response: dict[str, Any] | None,
        text: str,
        usage: dict[str, Any] | None,
        finish: str | None,
        request_id: str,
        provider: str,
        created: float,
        latency: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        messages, params = data.pop("messages"), data
        clean = self.redactor.data_each((messages, response, params, text))
        messages, response, params, text = clean
        prompt, completion = (usage["prompt_tokens"], usage["completion_tokens"]) if usage else (None, None)
        row = {
            **ROW_DEFAULTS,
            "request_id": request_id,
            "created_at": datetime.fromtimestamp(created, UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
            "requested_model": chat.model,
            "served_model": data.get("model"),
            "provider": provider,
            "messages": orjson.dumps(messages).decode(),
            "response": orjson.dumps(response).decode() if response is not None else None,
            "params": orjson.dumps(params).decode(),
            "finish_reason": finish,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost": prompt * PRICE_IN + completion * PRICE_OUT if usage else None,
            "latency_ms": round(latency * 1000, 3),
            "status": "ok",
            "stream": int(bool(chat.stream)),
            "prompt_text": "\n".join(str(m.get("content") or "") for m in messages),
            "response_text": text,
            **(extra or {}),
        }
        self.writer.put(_row_values(row))

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=None)
                self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600))
                # The collector settings modelyard's server makes at start (server/app.py), for a like comparison.
                gc.collect()
                gc.freeze()
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def migrate(db: str) -> None:
    """modelyard's schema (its migrations, full-text index included) in the file ``db``."""
    from modelyard.storage.sql import open_store

    async def run() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{db}")
        await store.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9202)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    parser.add_argument("--db", required=True)
    parser.add_argument("--no-log", action="store_true", help="no request log (what the log costs in the floor)")
    parser.add_argument("--log-on-loop", action="store_true", help="write the batches on the event loop's thread")
    args = parser.parse_args()
    migrate(args.db)
    app = LeanGateway(args.upstream, args.db, log_requests=not args.no_log, log_on_loop=args.log_on_loop)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


if __name__ == "__main__":
    main()
