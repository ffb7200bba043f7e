"""Who is calling: none on loopback by default; with a master key, ``Bearer``/``x-api-key`` for every route.

Virtual keys are looked up by their HMAC-SHA256 (never stored in plaintext), compared in constant time, and
cached briefly so a database hiccup does not turn valid keys into 401s. Decisions use the raw ASGI path.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard import errors
from modelyard.pipeline import Call, ChatStream, Handler, Outcome
from modelyard.server.errors import error_response
from modelyard.storage.base import KeyStore, VirtualKey, hash_key
from modelyard.web.session import WebGate, is_web_path

PUBLIC_PATHS = frozenset({"/health", "/ready"})
ADMIN_PREFIXES = ("/admin", "/metrics")
KEY_CACHE_SECONDS = 60.0


class KeyResolver:
    """Resolves a presented key to a ``VirtualKey`` (cached), and enforces per-key request rates."""

    def __init__(self, keys: Callable[[], Awaitable[KeyStore]], secret: str) -> None:
        self._keys = keys
        self._secret = secret
        self._cache: dict[str, tuple[float, VirtualKey | None]] = {}

    async def resolve(self, presented: str) -> VirtualKey | None:
        digest = hash_key(presented, self._secret)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        store = await self._keys()
        key = await store.get_by_hash(digest)
        if key is not None and not hmac.compare_digest(key.key_hash, digest):
            key = None
        self._cache[digest] = (time.monotonic() + KEY_CACHE_SECONDS, key)
        return key

    def forget(self, key_id: str) -> None:
        """Drop cached entries of a key (after revoke or spend changes)."""
        self._cache = {d: v for d, v in self._cache.items() if v[1] is None or v[1].id != key_id}

    def add_spend(self, key_id: str, amount: float) -> None:
        for _, key in self._cache.values():
            if key is not None and key.id == key_id:
                key.spent += amount


class AuthMiddleware:
    """ASGI middleware: sets ``scope["state"]["caller"]`` (and ``key``) or answers 401/403."""

    def __init__(
        self, app: ASGIApp, master_key: str | None, resolver: KeyResolver, web_gate: WebGate | None = None
    ) -> None:
        self.app = app
        self.master_key = master_key
        self.resolver = resolver
        self.web_gate = web_gate  # the workbench's session cookie: accepted on its own paths only, never /v1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        path: str = scope["path"]
        if self.master_key is None or path in PUBLIC_PATHS or scope["method"] == "OPTIONS":
            state["caller"], state["key"], state["admin"] = "local", None, self.master_key is None
            await self.app(scope, receive, send)
            return
        if self.web_gate is not None and is_web_path(path):
            await self.web_gate(scope, receive, send, self.app)
            return
        try:
            await self._authenticate(scope, state)
        except errors.ModelyardError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, state: dict[str, Any]) -> None:
        presented = _presented_key(scope)
        if not presented:
            raise errors.AuthenticationError("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'")
        assert self.master_key is not None
        if hmac.compare_digest(presented.encode(), self.master_key.encode()):
            state["caller"], state["key"], state["admin"] = "admin", None, True
            return
        key = await self.resolver.resolve(presented)
        if key is None or not key.is_active():
            raise errors.AuthenticationError("invalid, revoked or expired API key")
        if scope["path"].startswith(ADMIN_PREFIXES):
            raise errors.PermissionDeniedError("this route needs the master key")
        state["caller"], state["key"], state["admin"] = key.id, key, False


def _presented_key(scope: Scope) -> str | None:
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return api_key or None


def authorize_model(request: Request, model: str) -> None:
    """A virtual key may only use its allowed models (its budget and rates: the gateway's limit middleware)."""
    key: VirtualKey | None = getattr(request.state, "key", None)
    if key is None:
        return
    if key.allowed_models and not any(fnmatch.fnmatch(model, p) for p in key.allowed_models):
        raise errors.PermissionDeniedError(f"this key may not use model {model!r}", param="model")
    # Budget and request rate are enforced by the gateway's limit middleware (shared across replicas).


class KeySpendMiddleware:
    """Charges each call's cost to the calling virtual key, off the request path."""

    def __init__(self, keys: Callable[[], Awaitable[KeyStore]], resolver: KeyResolver) -> None:
        self._keys = keys
        self._resolver = resolver
        self._tasks: set[asyncio.Task[None]] = set()

    def skips(self, call: Call) -> bool:
        return not call.options.caller.startswith("vk_")

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        outcome = await next(call)
        if self.skips(call):
            return outcome
        if isinstance(outcome, ChatStream):
            return outcome.observe(on_end=lambda end: self._charge(call), after_last_frame=True)
        self._charge(call)
        return outcome

    def _charge(self, call: Call) -> None:
        amount = call.info.cost
        if not amount:
            return
        self._resolver.add_spend(call.options.caller, amount)
        task = asyncio.get_running_loop().create_task(self._persist(call.options.caller, amount))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _persist(self, key_id: str, amount: float) -> None:
        store = await self._keys()
        await store.add_spend(key_id, amount)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
