"""The workbench as one route that imports its pages (Jinja2, markdown-it, templates) on the first request.

A gateway serving only the API never pays for them (~2 MB and ~100 modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send

from modelyard.web.session import WebSessions, is_web_path

if TYPE_CHECKING:
    from modelyard.gateway import Gateway

#: Workbench pages outside ``is_web_path`` (reached with the API's credentials when a master key is set).
OTHER_PAGES = ("/runs",)


def serves(path: str) -> bool:
    """Whether ``path`` belongs to the workbench."""
    return is_web_path(path) or any(path == page or path.startswith(page + "/") for page in OTHER_PAGES)


class WorkbenchRoute(BaseRoute):
    """Matches every workbench path and hands it to the workbench's router, built on first use."""

    def __init__(self, gateway: Gateway, sessions: WebSessions | None = None) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self._router: Router | None = None

    @property
    def router(self) -> Router:
        """The workbench's own routes (importing them the first time)."""
        if self._router is None:
            from modelyard.web.workbench import workbench_routes

            self._router = Router(routes=workbench_routes(self.gateway, self.sessions))
        return self._router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and serves(scope["path"]):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return self.router.url_path_for(name, **path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)


def web_routes(gateway: Gateway, sessions: WebSessions | None = None) -> list[BaseRoute]:
    """Every workbench route over ``gateway``; ``sessions`` is set when the workbench needs the master key."""
    return [WorkbenchRoute(gateway, sessions)]
