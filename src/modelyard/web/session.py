"""Browser sessions and CSRF tokens for the workbench.

- **Session** (only when a master key is set): logging in with the master key sets ``modelyard_session``, an
  HttpOnly, SameSite=Strict cookie holding ``v1.<issued>.<nonce>.<hmac>``, signed with a key derived from the
  master key (never the key itself). It expires after ``SESSION_SECONDS``; logging out revokes its nonce, in
  every worker and replica that shares the database (within ``REVOCATION_REFRESH_SECONDS``).
  The server's ``AuthMiddleware`` accepts it on the workbench's paths only (``is_web_path``), never on ``/v1``
  or ``/admin``.
- **CSRF**: every browser gets a random ``modelyard_csrf`` cookie (HttpOnly, SameSite=Strict); every POST must
  carry ``HMAC(secret, cookie)`` in the ``X-CSRF-Token`` header (htmx) or a ``csrf_token`` form field. This holds
  with and without a master key: a page on another site can neither read the token nor send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

SESSION_COOKIE = "modelyard_session"
CSRF_COOKIE = "modelyard_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
#: How often a process reads the logouts other processes made (a logout elsewhere takes effect within this).
REVOCATION_REFRESH_SECONDS = 1.0

#: Exact paths and path prefixes served by the workbench (never an API route).
PAGE_PATHS = frozenset(
    {"/", "/login", "/logout", "/playground", "/chat", "/compare", "/logs", "/usage", "/keys", "/runs"}
)
PAGE_PREFIXES = ("/ui/", "/static/", "/chat/", "/logs/", "/runs/")
PUBLIC_PATHS = frozenset({"/login"})
PUBLIC_PREFIXES = ("/static/",)


def is_web_path(path: str) -> bool:
    """True for the workbench's pages, fragments and static files."""
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


class Revocations(Protocol):
    """Where logged-out sessions are shared between processes (the database's ``web_sessions`` store)."""

    async def revoke(self, nonce: str, expires_at: datetime) -> None: ...

    async def revoked(self) -> set[str]: ...


class WebSessions:
    """Issues and checks signed session tokens for one master key.

    A logout is known at once to the process that served it, and, through ``revocations`` (the database every
    worker and replica shares), to the others within ``REVOCATION_REFRESH_SECONDS``."""

    def __init__(
        self,
        master_key: str,
        max_age: float = SESSION_SECONDS,
        revocations: Callable[[], Awaitable[Revocations]] | None = None,
    ) -> None:
        self._key = hmac.new(master_key.encode(), b"modelyard web session v1", hashlib.sha256).digest()
        self._master = master_key.encode()
        self.max_age = max_age
        self._revocations = revocations
        self._revoked: dict[str, float] = {}  # logged out here: nonce -> when its session would expire
        self._shared: set[str] = set()  # logged out anywhere, as last read
        self._shared_at = -math.inf

    def check_key(self, presented: str) -> bool:
        """Whether ``presented`` is the master key (constant time)."""
        return hmac.compare_digest(presented.encode(), self._master)

    def issue(self) -> str:
        """A new session token."""
        payload = f"v1.{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{_sign(self._key, payload)}"

    def signed(self, token: str | None) -> tuple[str, float] | None:
        """``(nonce, expires at)`` of a token we issued that has not expired; ``None`` for any other."""
        parts = (token or "").split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], _sign(self._key, payload)):
            return None
        issued = int(parts[1])
        age = time.time() - issued
        return (parts[2], issued + self.max_age) if 0 <= age < self.max_age else None

    async def verify(self, token: str | None) -> bool:
        """Whether ``token`` is one we issued, unexpired and not logged out (here or in another process)."""
        signed = self.signed(token)
        if signed is None:
            return False
        nonce = signed[0]
        return nonce not in self._revoked and nonce not in await self._revoked_elsewhere()

    async def revoke(self, token: str | None) -> None:
        """Log a session out (its nonce is kept until it would have expired anyway)."""
        signed = self.signed(token)
        if signed is None:
            return
        nonce, expires = signed
        now = time.time()
        self._revoked = {n: t for n, t in self._revoked.items() if t > now}
        self._revoked[nonce] = expires
        if self._revocations is None:
            return
        try:
            await (await self._revocations()).revoke(nonce, datetime.fromtimestamp(expires, UTC))
        except Exception as exc:  # the cookie is still cleared, and this process refuses it
            logger.error("workbench logout not shared with other processes (database unavailable): %r", exc)

    async def _revoked_elsewhere(self) -> set[str]:
        if self._revocations is None or time.monotonic() - self._shared_at < REVOCATION_REFRESH_SECONDS:
            return self._shared
        self._shared_at = time.monotonic()  # requests meanwhile use the list read last: one read at a time
        try:
            self._shared = await (await self._revocations()).revoked()
        except Exception as exc:  # the database is down: the last list read still holds, and so do local logouts
            logger.warning("could not read workbench logouts from the database: %r", exc)
        return self._shared


class Csrf:
    """Double-submit CSRF tokens bound to the browser's ``modelyard_csrf`` cookie."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"modelyard web csrf v1", hashlib.sha256).digest()

    def seed(self, connection: HTTPConnection) -> str:
        """The browser's CSRF cookie, or a new one (to be set on the response by ``remember``)."""
        state = connection.state
        seed: str | None = getattr(state, "csrf_seed", None)
        if seed is None:
            seed = connection.cookies.get(CSRF_COOKIE) or ""
            if len(seed) < 16:
                seed = secrets.token_urlsafe(24)
                state.csrf_new = True
            state.csrf_seed = seed
        return seed

    def token(self, connection: HTTPConnection) -> str:
        """The token pages embed for this browser."""
        return _sign(self._key, self.seed(connection))

    def valid(self, connection: HTTPConnection, presented: str | None) -> bool:
        """Whether a POST carries the right token for the cookie it came with."""
        cookie = connection.cookies.get(CSRF_COOKIE)
        if not cookie or not presented:
            return False
        return hmac.compare_digest(presented, _sign(self._key, cookie))

    def remember(self, connection: HTTPConnection, response: Response) -> None:
        """Set the CSRF cookie on ``response`` when this request created it."""
        if getattr(connection.state, "csrf_new", False):
            secure = connection.url.scheme == "https"
            set_cookie(response, CSRF_COOKIE, self.seed(connection), max_age=None, secure=secure)


def set_cookie(response: Response, name: str, value: str, max_age: int | None, secure: bool = False) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole site (``Secure`` when served over https)."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure)


class WebGate:
    """Used by ``AuthMiddleware`` on workbench paths when a master key is set: the session cookie or the login page."""

    def __init__(self, sessions: WebSessions) -> None:
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        path: str = scope["path"]
        state = scope.setdefault("state", {})
        connection = HTTPConnection(scope)
        if await self.sessions.verify(connection.cookies.get(SESSION_COOKIE)):
            state["caller"], state["key"], state["admin"] = "admin", None, True
            await app(scope, receive, send)
            return
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            state["caller"], state["key"], state["admin"] = "anonymous", None, False
            await app(scope, receive, send)
            return
        await self._refuse(scope, path)(scope, receive, send)

    @staticmethod
    def _refuse(scope: Scope, path: str) -> Response:
        headers = Headers(scope=scope)
        target = "/login" if path in ("/", "/logout") else f"/login?next={quote(path, safe='/')}"
        if headers.get("hx-request") or path.startswith("/ui/"):
            message = {"error": {"message": "log in to the workbench first", "type": "authentication_error"}}
            return JSONResponse(message, status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
