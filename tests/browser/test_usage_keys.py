"""Usage charts from real traffic; the Keys page and the login behind a master key; CSRF and cookie scope."""

from __future__ import annotations

from typing import Any

from modelyard.pipeline import CallOptions
from tests.browser.conftest import MASTER, PRICED, Watch, log_in, shot, wait_for_log
from tests.support.live_server import LiveServer


def test_cost_charts_render(page: Any, watch: Watch, server: LiveServer) -> None:
    for i in range(3):
        request = {"model": PRICED, "messages": [{"role": "user", "content": f"priced request number {i}"}]}
        response = server.run(server.gateway.chat(request, CallOptions(tags=["billing"])))
        wait_for_log(server, response.modelyard.request_id)
    page.goto(server.url + "/usage")
    spend = page.locator("#chart-spend svg.chart")
    spend.wait_for()
    assert spend.locator("rect.bar").count() == 7  # one bar per day of the period
    heights = spend.locator("rect.bar").evaluate_all("els => els.map(e => Number(e.getAttribute('height')))")
    assert heights[-1] > 0  # today's spend
    assert page.locator("#kpi-spend").inner_text() not in ("$0", "—")
    assert page.locator("#chart-requests polyline").count() >= 1
    assert PRICED in page.locator(".usage-table").inner_text()
    shot(page, "usage")
    page.get_by_role("link", name="Tag").click()
    page.wait_for_url("**by=tag**")
    assert "billing" in page.locator(".usage-table").inner_text()
    page.get_by_role("link", name="30d").click()
    page.wait_for_url("**days=30**")
    assert page.locator("#chart-spend rect.bar").count() == 30


def test_keys_behind_the_master_key(page: Any, watch: Watch, secured: LiveServer) -> None:
    page.goto(secured.url + "/logs")
    page.wait_for_url("**/login?next=/logs")
    page.fill("#key", "not-the-key")
    page.click("button[type=submit]")
    page.get_by_text("That is not the master key.").wait_for()
    shot(page, "login")
    page.fill("#key", MASTER)
    page.click("button[type=submit]")
    page.wait_for_url(secured.url + "/logs")
    cookie = next(c for c in page.context.cookies() if c["name"] == "modelyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert MASTER not in cookie["value"]

    page.get_by_role("link", name="Keys").click()
    page.wait_for_url(secured.url + "/keys")
    page.fill("#k-name", "ci-bot")
    page.fill("#k-models", "fake/*, local/smollm2")
    page.fill("#k-rpm", "60")
    page.fill("#k-budget", "5")
    page.click("#key-form button[type=submit]")
    page.locator("#new-key").wait_for()
    plaintext = page.locator("#new-key").inner_text()
    assert plaintext.startswith("sk-my-")
    row = page.locator(".keys-table tbody tr", has_text="ci-bot")
    assert "fake/*, local/smollm2" in row.inner_text() and "$5" in row.inner_text()
    shot(page, "keys")
    models = page.request.get(secured.url + "/v1/models", headers={"Authorization": f"Bearer {plaintext}"})
    assert models.status == 200
    row.get_by_role("button", name="Revoke").click()
    page.locator(".keys-table tbody tr.revoked", has_text="ci-bot").wait_for()
    revoked = page.request.get(secured.url + "/v1/models", headers={"Authorization": f"Bearer {plaintext}"})
    assert revoked.status == 401


def test_session_cookie_is_only_for_the_workbench(page: Any, watch: Watch, secured: LiveServer) -> None:
    log_in(page, secured)
    page.wait_for_url(secured.url + "/")
    assert page.request.get(secured.url + "/v1/models").status == 401  # the cookie is no API key
    assert page.request.get(secured.url + "/admin/logs").status == 401
    assert page.request.get(secured.url + "/usage").status == 200
    no_token = page.request.post(secured.url + "/ui/keys", form={"name": "sneaky"})
    assert no_token.status == 403
    assert "sneaky" not in page.request.get(secured.url + "/keys").text()
    page.click("form.logout button")
    page.wait_for_url("**/login")
    page.goto(secured.url + "/usage")
    page.wait_for_url("**/login?next=/usage")
