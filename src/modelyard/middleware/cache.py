"""Exact-match response cache, keyed on the normalized request (model, messages, parameters; not ``user``).

Only deterministic requests (temperature 0 or a seed) are cached unless ``cache.mode`` is ``all``. A stream is
cached once it ends cleanly and a hit on a stream request is replayed as a stream. Hits cost 0; the cost
they saved is reported (``info.cost_saved`` and the log row's metadata ``cache_cost_saved``).

Per request, with the body field ``cache`` or the header ``x-modelyard-cache``:
``false`` / ``no-cache`` (skip), ``no-store`` (read but do not write), ``refresh`` (skip the read, write),
``ttl=SECONDS`` or ``{"ttl": SECONDS}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from modelyard import errors
from modelyard.config import CacheSettings
from modelyard.middleware.accounting import Pricer
from modelyard.middleware.limits import GuardedStream
from modelyard.pipeline import Call, ChatStream, Handler, Outcome
from modelyard.storage.cache_store import CacheStore
from modelyard.streaming import ChunkAccumulator, stream_from_response
from modelyard.types.chat import ChatResponse
from modelyard.types.usage import Usage

HEADER = "x-modelyard-cache"
_NOT_IN_KEY = {"model", "messages", "user", "stream", "stream_options", "metadata", "cache"}


@dataclass
class CacheControl:
    read: bool = True
    write: bool = True
    ttl: float | None = None


def parse_control(value: Any) -> CacheControl:
    """A body ``cache`` value or header text -> what to do; unknown values are a 400 (``param: cache``)."""
    if value is None or value is True:
        return CacheControl()
    if value is False:
        return CacheControl(read=False, write=False)
    if isinstance(value, dict):
        ttl = value.get("ttl")
        if ttl is not None and not (isinstance(ttl, int | float) and ttl > 0):
            raise errors.BadRequestError("cache.ttl must be a positive number of seconds", param="cache")
        return CacheControl(
            read=not (value.get("no_cache") or value.get("refresh")),
            write=not (value.get("no_cache") or value.get("no_store")),
            ttl=float(ttl) if ttl is not None else None,
        )
    if isinstance(value, str):
        control = CacheControl()
        for part in (p.strip().lower() for p in value.split(",") if p.strip()):
            if part in ("no-cache", "false", "off"):
                control.read = control.write = False
            elif part == "no-store":
                control.write = False
            elif part == "refresh":
                control.read = False
            elif part.startswith("ttl=") and part[4:].replace(".", "", 1).isdigit() and float(part[4:]) > 0:
                control.ttl = float(part[4:])
            else:
                raise errors.BadRequestError(f"unknown {HEADER} directive {part!r}", param="cache")
        return control
    raise errors.BadRequestError("cache must be true, false or an object", param="cache")


ServedBy = Callable[[str], Sequence[str]]
"""A requested name -> the ``provider/model`` names it is served by now (its alias target or group)."""


def cache_key(call: Call, served_by: Sequence[str] = ()) -> str:
    """SHA-256 of the request's model (and the models that name stands for now), messages and
    output-affecting parameters (sorted, canonical JSON): re-pointing an alias starts afresh."""
    request = call.chat_request
    params = {k: v for k, v in request.model_dump(exclude_none=True).items() if k not in _NOT_IN_KEY}
    body = {
        "model": request.model,
        "served_by": sorted(served_by),
        "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        "params": params,
        "extra_body": call.options.extra_body,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class CacheMiddleware:
    """Serves hits from ``store`` and stores complete answers (streams included); with no store (cache off)
    it only strips the per-request controls."""

    def __init__(
        self, store: CacheStore | None, settings: CacheSettings, pricer: Pricer, served_by: ServedBy | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.pricer = pricer
        self.served_by = served_by
        self.hits = 0
        self.misses = 0

    def _control(self, call: Call) -> CacheControl | None:
        """Read (and strip, so nothing goes upstream) the per-request controls; None: do not cache."""
        request = call.chat_request
        extra = request.model_extra or {}
        body = extra.get("cache")
        if "cache" in extra:
            stripped = request.model_copy()
            stripped.__pydantic_extra__ = {k: v for k, v in extra.items() if k != "cache"}
            call.request = stripped
        header = next((v for k, v in list(call.options.extra_headers.items()) if k.lower() == HEADER), None)
        call.options.extra_headers = {k: v for k, v in call.options.extra_headers.items() if k.lower() != HEADER}
        control = parse_control(body) if body is not None else parse_control(header)
        if header is not None and body is not None:
            control = _merge(parse_control(header), control)
        if not (control.read or control.write):
            return None
        deterministic = request.temperature == 0 or request.seed is not None
        if self.settings.mode == "deterministic" and not deterministic:
            return None
        return control

    def skips(self, call: Call) -> bool:
        """No cache and no per-request controls to strip (the common case when caching is off)."""
        if call.kind == "embed":
            return True
        if self.store is not None:
            return False
        extra = call.chat_request.model_extra
        return not (extra and "cache" in extra) and not any(k.lower() == HEADER for k in call.options.extra_headers)

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        if call.kind == "embed":
            return await next(call)
        control = self._control(call)  # always: the ``cache`` field and header never go upstream
        if control is None or self.store is None:
            return await next(call)
        key = cache_key(call, self.served_by(call.request.model) if self.served_by is not None else ())
        if control.read:
            cached = await self.store.get(key)
            if cached is not None:
                self.hits += 1
                return self._replay(call, cached)
        self.misses += 1
        outcome = await next(call)
        ttl = control.ttl or self.settings.ttl
        if not control.write:
            return outcome
        if isinstance(outcome, ChatResponse):
            await self._store(key, outcome, ttl)
            return outcome
        if isinstance(outcome, ChatStream):
            return self._recorded(outcome, key, ttl)
        return outcome

    def _recorded(self, stream: ChatStream, key: str, ttl: float) -> ChatStream:
        """The stream as it goes by; stored once it has finished every choice and reported usage."""
        acc = ChunkAccumulator()

        async def on_close(usage: Usage | None, delivered: bool) -> None:
            if acc.finished and acc.usage is not None:
                response = acc.response()
                response.modelyard = stream.info
                await self._store(key, response, ttl)

        return ChatStream(GuardedStream(stream, on_close, on_chunk=acc.add), stream.info)

    async def _store(self, key: str, response: ChatResponse, ttl: float) -> None:
        info = response.modelyard
        if self.store is None or not response.choices or info is None or info.served_model is None:
            return
        cost = self.pricer(info.served_model, response.usage).cost if response.usage is not None else None
        entry = {
            "response": response.model_dump(mode="json", exclude_none=True, exclude={"modelyard"}),
            "served_model": info.served_model,
            "provider": info.provider,
            "cost": cost,
        }
        await self.store.set(key, orjson.dumps(entry), ttl)

    def _replay(self, call: Call, raw: bytes) -> Outcome:
        entry = orjson.loads(raw)
        response = ChatResponse.model_validate(entry["response"])
        info = call.info
        info.cache_hit = True
        info.provider, info.served_model = entry.get("provider"), entry.get("served_model")
        info.cost, info.cost_source = 0.0, "computed"
        saved = entry.get("cost")
        info.cost_saved = saved  # type: ignore[attr-defined]
        call.options.metadata["cache_cost_saved"] = saved
        response.modelyard = info
        if call.kind == "stream":
            return ChatStream(stream_from_response(response), info)
        return response


def _merge(header: CacheControl, body: CacheControl) -> CacheControl:
    return CacheControl(read=header.read and body.read, write=header.write and body.write, ttl=body.ttl or header.ttl)
