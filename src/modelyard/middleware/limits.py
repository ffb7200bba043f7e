"""Rate limits (RPM / RPS / TPM token buckets) and in-flight caps, per key, per model and per deployment.

Before a call: take one request token and the estimated tokens (prompt + expected output) from every bucket
that applies, all or nothing, then an in-flight slot from every cap. After it (response returned, stream
closed, error, cancel, fallback — always): release the slots and reconcile the token estimate with the real
usage. Rejections are 429 ``rate_limit_exceeded`` with ``Retry-After`` and ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from modelyard import errors
from modelyard.config import RateLimitSettings
from modelyard.middleware.policy import LimitPolicy, LimitScope
from modelyard.pipeline import Call, ChatStream, Handler, Outcome
from modelyard.storage.counters import Bucket, Counters, Lease, TakeResult
from modelyard.types.chat import ChatChunk
from modelyard.types.usage import Usage

log = logging.getLogger("modelyard.limits")
TokenEstimator = Callable[[Call], int]
_background: set[asyncio.Task[None]] = set()


class LimitExceededError(errors.RateLimitError):
    """A gateway limit (not an upstream's); ``headers`` are sent with the 429."""

    def __init__(self, message: str, *, headers: dict[str, str], **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.headers = headers


@dataclass
class Admission:
    """What one admitted call holds: slots to release and a token estimate to reconcile."""

    counters: Counters
    lease: Lease | None = None
    token_buckets: list[Bucket] = field(default_factory=list)
    estimate: int = 0
    done: bool = False

    async def finish(self, used_tokens: int | None) -> None:
        """Release and reconcile, once. Never raises: a counter hiccup must not fail a finished request."""
        if self.done:
            return
        self.done = True
        try:
            if self.lease is not None:
                await self.counters.release(self.lease)
            if self.token_buckets:
                delta = (used_tokens or 0) - self.estimate
                if delta:
                    await self.counters.adjust([replace(b, cost=delta) for b in self.token_buckets])
        except Exception as exc:
            log.warning("could not release a limit slot (%s); it expires with its lease", type(exc).__name__)

    async def finish_shielded(self, used_tokens: int | None) -> None:
        """``finish`` that completes even when the caller is being cancelled (client disconnect)."""
        task = asyncio.ensure_future(self.finish(used_tokens))
        _background.add(task)
        task.add_done_callback(_background.discard)
        await asyncio.shield(task)


async def admit(
    counters: Counters, scopes: Sequence[LimitScope], lease_id: str, tokens: int, request_id: str | None = None
) -> Admission:
    """Take from every bucket and cap of ``scopes`` or raise ``LimitExceededError`` (nothing held)."""
    buckets = [b for s in scopes for b in s.request_buckets()]
    token_buckets = [b for s in scopes for b in s.token_buckets(tokens)]
    taken = [*buckets, *token_buckets]
    if taken:
        result = await counters.take(taken)
        if not result.ok:
            raise _rate_error(scopes, taken, result, request_id)
    slots = [slot for s in scopes if (slot := s.slot()) is not None]
    lease = None
    if slots:
        lease = await counters.acquire(slots, lease_id)
        if lease is None:
            if taken:
                await counters.adjust([replace(b, cost=-b.cost) for b in taken])  # not admitted: refund
            full = ", ".join(f"{s.name} (max {s.rule.max_parallel} in flight)" for s in scopes if s.rule.max_parallel)
            raise LimitExceededError(
                f"too many requests in flight: {full}",
                headers={},
                retry_after=1.0,
                request_id=request_id,
                code="rate_limit_exceeded",
            )
    return Admission(counters, lease, [replace(b, cost=0) for b in token_buckets], tokens if token_buckets else 0)


def _rate_error(
    scopes: Sequence[LimitScope], taken: Sequence[Bucket], result: TakeResult, request_id: str | None
) -> LimitExceededError:
    short = [i for i, (b, level) in enumerate(zip(taken, result.remaining, strict=False)) if level < b.cost]
    index = short[0] if short else 0
    bucket = taken[index]
    scope = next(s for s in scopes if bucket.key.startswith(s.name + ":"))
    requests = [(b, lv) for b, lv in zip(taken, result.remaining, strict=False) if not b.key.endswith(":tpm")]
    headers = {"x-ratelimit-reset-requests": f"{result.wait:.3f}s"}
    if requests:
        b, level = min(requests, key=lambda pair: pair[1])
        headers["x-ratelimit-limit-requests"] = str(math.floor(b.capacity))
        headers["x-ratelimit-remaining-requests"] = str(max(0, math.floor(level)))
    message = scope.describe(bucket)
    return LimitExceededError(
        message, headers=headers, retry_after=result.wait, request_id=request_id, code="rate_limit_exceeded"
    )


def used_tokens(outcome: Outcome | None) -> int | None:
    usage = getattr(outcome, "usage", None)
    return usage.total_tokens if isinstance(usage, Usage) else None


class GuardedStream:
    """Chunks of ``source``; ``on_close(usage, delivered)`` runs exactly once however the stream ends.

    A class rather than a generator, so closing it before the first chunk still runs ``on_close``; if it is
    dropped without being closed at all, a finalizer runs ``on_close`` on the loop.
    """

    def __init__(
        self,
        source: ChatStream,
        on_close: Callable[[Usage | None, bool], Awaitable[None]],
        on_chunk: Callable[[ChatChunk], None] | None = None,
    ) -> None:
        self.source = source
        self.on_chunk = on_chunk
        self.usage: Usage | None = None
        self.delivered = False
        self._on_close: Callable[[Usage | None, bool], Awaitable[None]] | None = on_close
        loop = asyncio.get_running_loop()
        self._finalizer = weakref.finalize(self, _close_later, loop, on_close)

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> ChatChunk:
        try:
            chunk = await self.source.__anext__()
        except BaseException:
            await self._close()
            raise
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.delivered = self.delivered or bool(chunk.choices)
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        return chunk

    async def aclose(self) -> None:
        try:
            await self.source.aclose()
        finally:
            await self._close()

    async def _close(self) -> None:
        callback, self._on_close = self._on_close, None
        self._finalizer.detach()
        if callback is not None:
            await callback(self.usage, self.delivered)


def _close_later(loop: asyncio.AbstractEventLoop, on_close: Callable[[Usage | None, bool], Awaitable[None]]) -> None:
    if loop.is_closed():
        return

    async def close() -> None:
        await on_close(None, True)

    def run() -> None:
        task = loop.create_task(close())
        _background.add(task)
        task.add_done_callback(_background.discard)

    loop.call_soon_threadsafe(run)


class RateLimitMiddleware:
    """Per-key and per-model limits around the rest of the chain."""

    def __init__(self, counters: Counters, policy: LimitPolicy, estimate_tokens: TokenEstimator) -> None:
        self.counters = counters
        self.policy = policy
        self.estimate_tokens = estimate_tokens

    def skips(self, call: Call) -> bool:
        return not self.policy.may_limit(call)

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        if self.skips(call):
            return await next(call)
        scopes = self.policy.scopes(call, await self.policy.key(call))
        if not scopes:
            return await next(call)
        tokens = self.estimate_tokens(call) if any(s.rule.tpm for s in scopes) else 0
        admission = await admit(self.counters, scopes, f"{call.request_id}:call", tokens, call.request_id)
        return await run_admitted(admission, call, next)


async def run_admitted(admission: Admission, call: Call, next: Handler) -> Outcome:
    """Run the call; release the admission when its response is complete (a stream: when it closes)."""
    try:
        outcome = await next(call)
    except BaseException:
        await admission.finish_shielded(None)
        raise
    if isinstance(outcome, ChatStream):
        return hold_until_closed(outcome, admission)
    await admission.finish_shielded(used_tokens(outcome))
    return outcome


def hold_until_closed(stream: ChatStream, admission: Admission) -> ChatStream:
    """The same stream, finishing ``admission`` when it ends, fails or is closed."""

    async def on_close(usage: Usage | None, delivered: bool) -> None:
        await admission.finish_shielded(usage.total_tokens if usage is not None else None)

    return ChatStream(GuardedStream(stream, on_close), stream.info)


def deployment_scope(
    deployment_id: str, rpm: int | None, tpm: int | None, max_parallel: int | None
) -> LimitScope | None:
    """The limits of one deployment (None when it has none)."""
    if not (rpm or tpm or max_parallel):
        return None
    return LimitScope(f"deployment:{deployment_id}", RateLimitSettings(rpm=rpm, tpm=tpm, max_parallel=max_parallel))
