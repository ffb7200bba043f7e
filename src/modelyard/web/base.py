"""What every workbench page shares: the gateway, templates, CSRF checks, and page/fragment responses."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from modelyard import errors
from modelyard.gateway import Gateway
from modelyard.sdk.admin_local import logs_settled
from modelyard.storage.sql import SQLStore
from modelyard.types.models import ModelInfo
from modelyard.web.render import FILTERS
from modelyard.web.runs import RunRegistry
from modelyard.web.session import CSRF_FIELD, CSRF_HEADER, Csrf, WebSessions

TEMPLATES = Path(__file__).parent / "templates"

#: No inline script, nothing from another origin. Alpine evaluates its attribute expressions (unsafe-eval).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

Endpoint = Callable[[Request], Awaitable[Response]]


class Workbench:
    """The workbench's shared state: one per server app."""

    def __init__(self, gateway: Gateway, sessions: WebSessions | None) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self.csrf = Csrf(gateway.key_secret())
        self.runs = RunRegistry()
        self.templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[self._globals])
        self.templates.env.filters.update(FILTERS)
        self.templates.env.trim_blocks = True
        self.templates.env.lstrip_blocks = True

    @property
    def auth_enabled(self) -> bool:
        """Whether the workbench sits behind the master key (and shows the Keys page)."""
        return self.sessions is not None

    def _globals(self, request: Request) -> dict[str, Any]:
        signed_in = not self.auth_enabled or bool(getattr(request.state, "admin", False))
        return {"csrf_token": self.csrf.token(request), "auth_enabled": self.auth_enabled, "signed_in": signed_in}

    async def store(self) -> SQLStore:
        """The gateway's stores (logs, conversations, prompts, keys)."""
        return await self.gateway.stores()

    async def settled_store(self) -> SQLStore:
        """The stores once every request log submitted before now is written (so a run just made shows up)."""
        store = await self.gateway.stores()
        await logs_settled(self.gateway)
        return store

    async def models(self) -> list[ModelInfo]:
        """Models the gateway can serve now (with context window and price)."""
        return await self.gateway.models()

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A full page or a fragment from ``templates/``, with security headers and the CSRF cookie."""
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        self.csrf.remember(request, response)
        return response

    def html(self, name: str, **context: Any) -> str:
        """A template rendered to a string (for SSE events)."""
        return self.templates.get_template(name).render(**context)

    def error_fragment(self, request: Request, message: str, status: int = 400) -> Response:
        """An error: a dismissable box in ``#flash`` for htmx requests, else a small page with ``status``.

        htmx gets a 200 (the browser logs every failed request as a console error; the status is in a header).
        """
        if not request.headers.get("hx-request"):
            return self.page(request, "error.html", status=status, message=message)
        response = HTMLResponse(self.html("partials/error.html", message=message))
        response.headers.update(SECURITY_HEADERS)
        response.headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML", "X-Error-Status": str(status)})
        return response

    def redirect(self, request: Request, path: str) -> Response:
        """Go to ``path``: an ``HX-Redirect`` for htmx requests, else a 303."""
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": path})
        return RedirectResponse(path, status_code=303)


def posted(workbench: Workbench) -> Callable[[Endpoint], Endpoint]:
    """Decorator for POST endpoints: a valid CSRF token or 403; model errors become an error fragment."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        """Wrap one endpoint."""

        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            """Check the token, run the endpoint, show model errors."""
            presented = request.headers.get(CSRF_HEADER)
            if presented is None:
                form = await request.form()
                field = form.get(CSRF_FIELD)
                presented = field if isinstance(field, str) else None
            if not workbench.csrf.valid(request, presented):
                return workbench.error_fragment(request, "This form expired: reload the page and try again.", 403)
            try:
                return await endpoint(request)
            except errors.ModelyardError as exc:
                return workbench.error_fragment(request, exc.message, exc.status_code or 400)

        return wrapper

    return decorate


def form_text(form: Any, name: str, default: str = "") -> str:
    """A text field of a submitted form (files and missing fields give ``default``)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def form_number(form: Any, name: str, kind: type[int] | type[float]) -> int | float | None:
    """A numeric form field; empty means unset, garbage is a ``BadRequestError`` naming the field."""
    raw = form_text(form, name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise errors.BadRequestError(f"{name} must be a number", param=name) from None
