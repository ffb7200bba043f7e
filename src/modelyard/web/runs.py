"""Runs: a model call prepared by a POST and streamed to the browser over SSE by a following GET.

The POST answers a fragment that connects (htmx SSE extension) to ``/ui/runs/<id>/events``; that endpoint takes
the run (each run streams once: a reconnect gets a ``done`` saying so) and relays the gateway stream as events:

- ``delta`` / ``reasoning``: a JSON string, appended by the page as *text* (never parsed as HTML);
- ``tool``: a JSON object ``{index, name, arguments}`` (the call so far), shown as text;
- ``done``: the final HTML (markdown rendered safely on the server) with tokens, cost, latency, TTFT and tokens/s.

Pending runs live in this process's memory: with several server workers, a run prepared by one worker cannot be
streamed by another (the page then says so).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.streaming import ChunkAccumulator
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, Message

RUN_TTL_SECONDS = 300.0
MAX_PENDING_RUNS = 256


@dataclass
class RunSpec:
    """What to call, and how the page shows it (``kind``: playground, chat or compare)."""

    request: ChatRequest
    options: CallOptions = field(default_factory=CallOptions)
    kind: str = "playground"
    group: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)


@dataclass
class RunStats:
    """What a finished run cost and how fast it was."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    usage_estimated: bool = False


@dataclass
class RunOutcome:
    """A finished run: the answer (whole or partial), an error if any, and its numbers."""

    spec: RunSpec
    run_id: str
    message: Message | None = None
    finish_reason: str | None = None
    error: str | None = None
    request_id: str | None = None
    served_model: str | None = None
    fallback: bool = False
    stats: RunStats = field(default_factory=RunStats)


class RunRegistry:
    """Pending runs (single use, expiring) and the request ids of each compare group."""

    def __init__(self) -> None:
        self._pending: dict[str, RunSpec] = {}
        self.groups: dict[str, list[str]] = {}

    def add(self, spec: RunSpec) -> str:
        """Keep ``spec`` until its events are requested; returns the run id."""
        now = time.monotonic()
        self._pending = {k: v for k, v in self._pending.items() if now - v.created < RUN_TTL_SECONDS}
        while len(self._pending) >= MAX_PENDING_RUNS:
            self._pending.pop(next(iter(self._pending)))
        run_id = secrets.token_urlsafe(12)
        self._pending[run_id] = spec
        return run_id

    def take(self, run_id: str) -> RunSpec | None:
        """The run to stream now (``None`` when unknown, expired or already streamed)."""
        spec = self._pending.pop(run_id, None)
        if spec is None or time.monotonic() - spec.created >= RUN_TTL_SECONDS:
            return None
        return spec

    def joined(self, group: str | None, request_id: str) -> None:
        """Remember that ``request_id`` belongs to compare ``group``."""
        if group is None:
            return
        members = self.groups.setdefault(group, [])
        members.append(request_id)
        if len(self.groups) > 1000:
            self.groups.pop(next(iter(self.groups)))


def sse_event(event: str, data: str) -> bytes:
    """One SSE event; multi-line data becomes several ``data:`` lines (the browser joins them with newlines)."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class _Progress:
    """Accumulates a stream and turns each chunk into SSE events."""

    def __init__(self, started: float) -> None:
        self.acc = ChunkAccumulator()
        self.started = started
        self.first_token: float | None = None

    def events(self, chunk: ChatChunk) -> list[bytes]:
        """Record ``chunk`` and return the SSE events it makes."""
        self.acc.add(chunk)
        out: list[bytes] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if (delta.content or delta.reasoning_content or delta.tool_calls) and self.first_token is None:
                self.first_token = time.monotonic()
            if delta.reasoning_content:
                out.append(sse_event("reasoning", _json(delta.reasoning_content)))
            if delta.content:
                out.append(sse_event("delta", _json(delta.content)))
            for call in delta.tool_calls or []:
                whole = self.acc.response().choices[0].message.tool_calls or []
                if call.index < len(whole):
                    named = whole[call.index].function
                    payload = {"index": call.index, "name": named.name, "arguments": named.arguments}
                    out.append(sse_event("tool", _json(payload)))
        return out

    def stats(self, stream: ChatStream) -> RunStats:
        """Tokens, cost, latency, TTFT and speed of the finished stream."""
        ended = time.monotonic()
        usage = self.acc.usage
        completion = usage.completion_tokens if usage else None
        ttft = (self.first_token - self.started) * 1000 if self.first_token else None
        generation = ended - (self.first_token or self.started)
        return RunStats(
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=completion,
            cost=stream.info.cost,
            latency_ms=(ended - self.started) * 1000,
            ttft_ms=ttft,
            tokens_per_second=completion / generation if completion and generation > 0 else None,
            usage_estimated=stream.info.usage_estimated,
        )

    def response(self) -> ChatResponse:
        """The whole answer so far."""
        return self.acc.response()


async def run_events(
    gateway: Gateway,
    registry: RunRegistry,
    run_id: str,
    spec: RunSpec,
    render_done: Callable[[RunOutcome], str],
) -> AsyncIterator[bytes]:
    """Stream one run as SSE events, ending with ``done`` (also on errors)."""
    outcome = RunOutcome(spec=spec, run_id=run_id)
    yield b": started\n\n"
    started = time.monotonic()  # latency and time to first token include routing, retries and model loading
    try:
        stream = await gateway.stream(spec.request, spec.options)
    except errors.ModelyardError as exc:
        outcome.error = exc.message
        yield sse_event("done", render_done(outcome))
        return
    progress = _Progress(started)
    outcome.request_id = stream.info.request_id
    registry.joined(spec.group, stream.info.request_id)
    try:
        async for chunk in stream:
            for event in progress.events(chunk):
                yield event
    except errors.ModelyardError as exc:
        outcome.error = exc.message
    finally:
        await stream.aclose()
    response = progress.response()
    if response.choices:
        outcome.message = response.choices[0].message
        outcome.finish_reason = response.choices[0].finish_reason
    outcome.served_model = stream.info.served_model
    outcome.fallback = len({a.model for a in stream.info.attempts}) > 1
    outcome.stats = progress.stats(stream)
    yield sse_event("done", render_done(outcome))
