"""Workbench sessions: signed, expiring, and logged out in every worker and replica on the same database."""

from __future__ import annotations

import pathlib
import re
import time
from collections.abc import Iterator

import httpx2
import pytest

from modelyard.web.session import REVOCATION_REFRESH_SECONDS, SESSION_COOKIE, WebSessions
from tests.server.conftest import server_settings
from tests.support.live_server import LiveServer

MASTER = "sk-master-logout-test-0123456789"


@pytest.fixture
def two_workers(tmp_path: pathlib.Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two servers on one SQLite file, as ``--workers 2`` runs them."""
    first = LiveServer(server_settings(tmp_path, master_key=MASTER)).start()
    second = LiveServer(server_settings(tmp_path, master_key=MASTER)).start()
    yield first, second
    second.stop()
    first.stop()


def _csrf(browser: httpx2.Client, url: str) -> str:
    page = browser.get(f"{url}/login").text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_logout_on_one_worker_is_refused_by_the_other(two_workers: tuple[LiveServer, LiveServer]) -> None:
    first, second = two_workers
    with httpx2.Client(base_url=first.url, follow_redirects=False) as browser:
        logged_in = browser.post(
            "/login", data={"key": MASTER, "next": "/logs", "csrf_token": _csrf(browser, first.url)}
        )
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/logs"
        cookie = browser.cookies[SESSION_COOKIE]
        assert httpx2.get(f"{second.url}/logs", cookies={SESSION_COOKIE: cookie}).status_code == 200
        logged_out = browser.post("/logout", data={"csrf_token": _csrf(browser, first.url)})
        assert logged_out.status_code == 303 and logged_out.headers["location"] == "/login"
    assert httpx2.get(f"{first.url}/logs", cookies={SESSION_COOKIE: cookie}).status_code == 303  # at once here
    deadline = time.monotonic() + REVOCATION_REFRESH_SECONDS + 2
    refused = False
    while time.monotonic() < deadline and not refused:
        refused = httpx2.get(f"{second.url}/logs", cookies={SESSION_COOKIE: cookie}).status_code == 303
        time.sleep(0.1)
    assert refused  # before: the other worker took the cookie until it expired (12 h)


async def test_session_tokens_are_signed_expire_and_revoke() -> None:
    sessions = WebSessions("master-key-1", max_age=60)
    token = sessions.issue()
    assert await sessions.verify(token) and "master-key-1" not in token
    assert not await WebSessions("another-key").verify(token)
    assert not await sessions.verify(token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not await sessions.verify(None) and not await sessions.verify("v1.x.y.z")
    await sessions.revoke(token)
    assert not await sessions.verify(token)
    old = WebSessions("master-key-1", max_age=1)
    stale = old.issue()
    parts = stale.split(".")
    assert not await old.verify(".".join([parts[0], str(int(time.time()) - 5), *parts[2:]]))
