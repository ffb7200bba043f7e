"""The workbench's routes: pages at ``/``, fragments and SSE under ``/ui/``, static files under ``/static``.

Imported on the first workbench request (``modelyard.web.routes``), with Jinja2 templates and markdown-it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from modelyard.gateway import Gateway
from modelyard.web.base import Workbench
from modelyard.web.pages.chat import ChatPage
from modelyard.web.pages.compare import ComparePage
from modelyard.web.pages.keys import KeysPage
from modelyard.web.pages.login import LoginPage
from modelyard.web.pages.logs import LogsPage
from modelyard.web.pages.playground import PlaygroundPage
from modelyard.web.pages.runs import RunsPage
from modelyard.web.pages.usage import UsagePage
from modelyard.web.runs import RunOutcome, run_events, sse_event
from modelyard.web.session import WebSessions

STATIC = Path(__file__).parent / "static"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class RunEvents:
    """``GET /ui/runs/{id}/events``: stream a prepared run once; afterwards it answers a ``done`` saying so."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """The SSE route."""
        return [Route("/ui/runs/{id}/events", self.events)]

    def render_done(self, outcome: RunOutcome) -> str:
        """The final HTML of a run (the ``done`` event)."""
        message = outcome.message
        return self.bench.html(
            "partials/run_done.html",
            o=outcome,
            text=message.text() if message else "",
            reasoning=message.reasoning_content if message else None,
            tool_calls=message.tool_calls or [] if message else [],
            **outcome.spec.context,
        )

    async def events(self, request: Request) -> Response:
        """Stream the run as SSE (a run that is unknown or already streamed gets a ``done`` that says so)."""
        run_id = request.path_params["id"]
        spec = self.bench.runs.take(run_id)
        if spec is None:  # already streamed (a reconnect), expired, or prepared by another server process
            gone = sse_event("done", self.bench.html("partials/run_gone.html", run_id=run_id))
            return Response(gone, media_type="text/event-stream", headers=SSE_HEADERS)
        stream = run_events(self.bench.gateway, self.bench.runs, run_id, spec, self.render_done)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


def workbench_routes(gateway: Gateway, sessions: WebSessions | None = None) -> list[BaseRoute]:
    """Every workbench route over ``gateway``; ``sessions`` is set when the workbench needs the master key."""
    bench = Workbench(gateway, sessions)
    pages = (
        PlaygroundPage(bench),
        ChatPage(bench),
        ComparePage(bench),
        LogsPage(bench),
        UsagePage(bench),
        RunsPage(bench),
        KeysPage(bench),
        LoginPage(bench),
        RunEvents(bench),
    )
    routes: list[BaseRoute] = [route for page in pages for route in page.routes()]
    routes.append(Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"))
    return routes
