"""Log in with the master key (sets a signed session cookie) and log out."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from modelyard.web.base import Workbench, form_text, posted
from modelyard.web.session import SESSION_COOKIE, set_cookie

FAILED_LOGIN_DELAY = 0.5


def local_target(raw: str) -> str:
    """Where to go after logging in: a path on this site only (no ``//host`` or ``scheme:``)."""
    if not raw.startswith("/") or raw.startswith("//") or "\\" in raw or ":" in raw.split("?", 1)[0]:
        return "/"
    return raw


class LoginPage:
    """``/login`` and ``/logout``."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """Login and logout routes."""
        post = posted(self.bench)
        return [
            Route("/login", self.form, methods=["GET"]),
            Route("/login", post(self.login), methods=["POST"]),
            Route("/logout", post(self.logout), methods=["POST"]),
        ]

    async def form(self, request: Request) -> Response:
        """The login form (home when no master key is set)."""
        if self.bench.sessions is None:
            return RedirectResponse("/", status_code=303)
        target = local_target(request.query_params.get("next", "/"))
        return self.bench.page(request, "login.html", next=target, error="", active="")

    async def login(self, request: Request) -> Response:
        """Check the master key; on success set the session cookie and go on."""
        sessions = self.bench.sessions
        if sessions is None:
            return RedirectResponse("/", status_code=303)
        form = await request.form()
        target = local_target(form_text(form, "next", "/"))
        if not sessions.check_key(form_text(form, "key")):
            await asyncio.sleep(FAILED_LOGIN_DELAY)
            # 200, not 401: the browser would log a failed page load as a console error.
            return self.bench.page(request, "login.html", next=target, error="That is not the master key.")
        response = RedirectResponse(target, status_code=303)
        secure = request.url.scheme == "https"
        set_cookie(response, SESSION_COOKIE, sessions.issue(), max_age=int(sessions.max_age), secure=secure)
        return response

    async def logout(self, request: Request) -> Response:
        """Forget the session and clear its cookie."""
        if self.bench.sessions is not None:
            await self.bench.sessions.revoke(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login" if self.bench.sessions else "/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response
