"""The workbench (Jinja2 pages, markdown-it) is imported on its first request, and serves as before once it is."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx2
from starlette.routing import BaseRoute, Mount, Route

from modelyard.web.routes import serves
from modelyard.web.workbench import workbench_routes
from tests.support.live_server import LiveServer

PROBE = """
import sys
from modelyard.config import Settings
from modelyard.server.app import create_app
create_app(Settings(database_url="sqlite://"))
print(sorted(m for m in ("modelyard.web.workbench", "markdown_it") if m in sys.modules))
"""


def test_building_the_app_does_not_import_the_workbench() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _example_path(route: BaseRoute) -> str:
    if isinstance(route, Mount):
        return route.path + "/app.css"
    assert isinstance(route, Route)
    return re.sub(r"\{[^}]*\}", "x", route.path)


def test_every_workbench_route_is_claimed(live: LiveServer) -> None:
    paths = [_example_path(route) for route in workbench_routes(live.gateway)]
    assert len(paths) > 20
    assert [path for path in paths if not serves(path)] == []
    assert not any(serves(path) for path in ("/v1/models", "/admin/keys", "/health", "/metrics", "/runsx"))


def test_pages_errors_and_api_after_the_first_request(live: LiveServer) -> None:
    page = httpx2.get(f"{live.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx2.get(f"{live.url}/runs").status_code == 200
    assert httpx2.get(f"{live.url}/static/app.css").status_code == 200
    missing = httpx2.get(f"{live.url}/ui/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_route"
    wrong = httpx2.get(f"{live.url}/logout")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    slash = httpx2.get(f"{live.url}/playground/", follow_redirects=False)
    assert slash.status_code in (307, 308) and slash.headers["location"].endswith("/playground")
    assert httpx2.get(f"{live.url}/health").json() == {"status": "ok"}
