"""Agent runs in the workbench: the list and its status filter, a run's steps with tool inputs and outputs
(escaped), the tool metrics per model, and approving a paused call in the browser, then resuming from Python."""

from __future__ import annotations

import json
from typing import Any

from modelyard.agent import Agent, RunResult, ToolError, tool
from modelyard.providers.fake import FakeReply
from tests.browser.conftest import Watch, fake_of, shot, watch_page
from tests.support.live_server import LiveServer

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>Paris"


@tool
def weather(city: str) -> str:
    """Current weather in a city."""
    return json.dumps({"city": city, "temp_c": 21, "sky": "<b>clear</b>"})


@tool
def thermometer(room: str) -> str:
    """Read a room's thermometer."""
    raise ToolError(f"sensor in {room} is offline")


@tool(requires_approval=True)
def send_payment(amount: int, to: str) -> str:
    """Pay someone."""
    return f"paid {amount} to {to}"


TOOLS = [weather, thermometer, send_payment]


def _run(server: LiveServer, model: str, prompt: str, *replies: FakeReply) -> RunResult:
    fake_of(server).queue(*replies, model=model.split("/", 1)[1])
    result: RunResult = server.run(Agent(server.gateway, model, tools=TOOLS).run(prompt))
    return result


def _seed(server: LiveServer) -> tuple[RunResult, RunResult, RunResult]:
    """A completed run with a tool call, a run whose tool fails, and one paused for approval."""
    done = _run(
        server,
        "fake/tools-a",
        "weather in paris?",
        FakeReply(tool_calls=[("weather", {"city": HOSTILE})]),
        FakeReply(text="It is **21 °C** and clear."),
    )
    failed = _run(
        server,
        "fake/tools-b",
        "how warm is the kitchen?",
        FakeReply(tool_calls=[("thermometer", {"room": "kitchen"})]),
        FakeReply(text="The kitchen sensor is offline."),
    )
    paused = _run(
        server, "fake/tools-a", "pay bob 5", FakeReply(tool_calls=[("send_payment", {"amount": 5, "to": "bob"})])
    )
    assert (done.status, failed.status, paused.status) == ("completed", "completed", "paused")
    assert failed.tool_calls[0].ok is False
    return done, failed, paused


def _row(page: Any, run_id: str) -> Any:
    return page.locator(f".runs-table tr[data-run-id='{run_id}']")


def test_runs_list_detail_metrics_and_approval(page: Any, watch: Watch, server: LiveServer) -> None:
    done, failed, paused = _seed(server)

    page.goto(server.url + "/runs")
    assert page.locator("nav.nav a[aria-current=page]").inner_text() == "Runs"
    for result in (done, failed, paused):
        assert _row(page, result.run_id).count() == 1
    row = _row(page, done.run_id).inner_text()
    assert "completed" in row and "fake/tools-a" in row
    assert [c.strip() for c in _row(page, done.run_id).locator("td.num").all_inner_texts()[:2]] == ["2", "1"]
    assert "paused" in _row(page, paused.run_id).inner_text()

    metrics = page.locator(".metrics-table")
    a, b = metrics.locator("tr[data-model='fake/tools-a']"), metrics.locator("tr[data-model='fake/tools-b']")
    assert a.locator(".metric-validity").inner_text() == "100.0%"
    assert a.locator(".metric-success").inner_text() == "100.0%"
    assert b.locator(".metric-success").inner_text() == "0.0%"
    assert b.locator(".metric-steps").inner_text() == "2.0"
    shot(page, "runs")

    page.click("#status-filter a:text-is('paused')")
    page.wait_for_url("**/runs?status=paused**")
    assert _row(page, paused.run_id).count() == 1
    assert _row(page, done.run_id).count() == 0 and _row(page, failed.run_id).count() == 0

    # a completed run: steps, the tool's input (hostile text stays text) and pretty-printed JSON output
    page.goto(f"{server.url}/runs/{done.run_id}")
    assert page.locator(".agent-step").count() == 2
    call = page.locator(".agent-call").first
    assert call.locator(".tool-name").inner_text().strip() == "weather"
    arguments = json.loads(call.locator(".call-arguments").inner_text())
    assert arguments == {"city": HOSTILE}
    output = call.locator(".call-output").inner_text()
    assert '\n  "temp_c": 21' in output and '"sky": "<b>clear</b>"' in output
    assert page.locator(".agent-call img, .agent-call script, .agent-call b").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert "21 °C" in page.locator("#run-answer").inner_text()
    assert page.locator(".agent-step").first.locator("a[href^='/logs/']").count() == 1
    shot(page, "run-detail")

    # a failed tool: its error, marked as such
    page.goto(f"{server.url}/runs/{failed.run_id}")
    failed_call = page.locator(".agent-call").first
    assert "sensor in kitchen is offline" in failed_call.locator(".call-error").inner_text()
    assert "tool error" in failed_call.locator(".agent-call-head").inner_text()

    # the paused run: its pending call; invalid JSON is refused; approving records the decision
    page.goto(f"{server.url}/runs/{paused.run_id}")
    call_id = paused.pending[0].call_id
    form = page.locator(f"#pending-{call_id}")
    assert f"modelyard agent --resume {paused.run_id}" in page.locator(".resume-command").inner_text()
    assert json.loads(form.locator("textarea[name=arguments]").input_value()) == {"amount": 5, "to": "bob"}
    form.locator("textarea[name=arguments]").fill('{"amount": 5,')
    form.locator("button[value=edit]").click()
    page.locator("#flash .alert-error").wait_for()
    assert "not valid JSON" in page.locator("#flash").inner_text()
    page.locator("#flash [data-dismiss]").click()
    form.locator("textarea[name=arguments]").fill("[1, 2]")
    form.locator("button[value=edit]").click()
    page.locator("#flash .alert-error").wait_for()
    assert "must be a JSON object" in page.locator("#flash").inner_text()
    page.locator("#flash [data-dismiss]").click()
    assert (server.run(_stored(server, paused.run_id))).decisions == {}
    shot(page, "run-paused")

    page.locator(f"#pending-{call_id} button[value=approve]").click()
    page.locator(f"#pending-{call_id} .decision-badge").wait_for()
    assert "recorded: approve" in page.locator(f"#pending-{call_id} .decision-badge").inner_text()
    assert "applied when the run is resumed" in page.locator("#pending-calls").inner_text()
    stored = server.run(_stored(server, paused.run_id))
    assert stored.decisions[call_id]["action"] == "approve"
    shot(page, "run-approved")

    # the SDK resumes the run (it has the tools): the recorded approval applies and the run completes
    fake_of(server).queue(FakeReply(text="Paid bob."), model="tools-a")
    resumed: RunResult = server.run(Agent(server.gateway, tools=TOOLS).resume(paused.run_id))
    assert resumed.status == "completed" and resumed.text == "Paid bob."
    [payment] = resumed.tool_calls
    assert (payment.output, payment.decision) == ("paid 5 to bob", "approved")

    page.reload()
    assert page.locator("#pending-calls").count() == 0
    assert "completed" in page.locator(".detail-head").inner_text()
    paid = page.locator(".agent-call").first
    assert "approved" in paid.locator(".agent-call-head").inner_text()
    assert paid.locator(".call-output").inner_text() == "paid 5 to bob"
    shot(page, "run-resumed")


async def _stored(server: LiveServer, run_id: str) -> Any:
    return await (await server.gateway.stores()).runs.get(run_id)


def test_decisions_need_csrf_and_a_paused_run(page: Any, watch: Watch, server: LiveServer) -> None:
    done = _run(
        server, "fake/tools-c", "weather?", FakeReply(tool_calls=[("weather", {"city": "Oslo"})]), FakeReply(text="ok")
    )
    paused = _run(server, "fake/tools-c", "pay", FakeReply(tool_calls=[("send_payment", {"amount": 1, "to": "x"})]))
    call_id = paused.pending[0].call_id
    page.goto(f"{server.url}/runs/{paused.run_id}")
    forged = page.request.post(
        f"{server.url}/ui/agent-runs/{paused.run_id}/decisions", form={"call_id": call_id, "action": "approve"}
    )  # the session cookie, but no token
    assert forged.status == 403
    assert server.run(_stored(server, paused.run_id)).decisions == {}
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    headers = {"X-CSRF-Token": token}
    finished = page.request.post(
        f"{server.url}/ui/agent-runs/{done.run_id}/decisions", form={"call_id": call_id, "action": "approve"},
        headers=headers,
    )  # fmt: skip
    assert finished.status == 400 and "not waiting for decisions" in finished.text()
    unknown = page.request.post(
        f"{server.url}/ui/agent-runs/{paused.run_id}/decisions", form={"call_id": "nope", "action": "approve"},
        headers=headers,
    )  # fmt: skip
    assert unknown.status == 400 and "no such pending tool call" in unknown.text()

    # edit, then change one's mind and deny: the last decision recorded wins
    form = page.locator(f"#pending-{call_id}")
    form.locator("textarea[name=arguments]").fill('{"amount": 3, "to": "x"}')
    form.locator("button[value=edit]").click()
    page.locator(f"#pending-{call_id} .decision-badge:text('recorded: edit')").wait_for()
    assert json.loads(form.locator("textarea[name=arguments]").input_value()) == {"amount": 3, "to": "x"}
    assert server.run(_stored(server, paused.run_id)).decisions[call_id]["arguments"] == {"amount": 3, "to": "x"}
    form.locator("input[name=reason]").fill("not today")
    form.locator("button[value=deny]").click()
    page.locator(f"#pending-{call_id} .decision-badge:text('recorded: deny (not today)')").wait_for()
    fake_of(server).queue(FakeReply(text="Understood."), model="tools-c")
    resumed: RunResult = server.run(Agent(server.gateway, tools=TOOLS).resume(paused.run_id))
    [denied] = resumed.tool_calls
    assert (resumed.status, denied.executed, denied.error_kind) == ("completed", False, "denied")
    assert "not today" in denied.output
    assert page.request.get(f"{server.url}/runs/run_missing").status == 404


def test_runs_pages_fit_a_phone(browser: Any, server: LiveServer) -> None:
    paused = _run(server, "fake/tools-d", "pay", FakeReply(tool_calls=[("send_payment", {"amount": 2, "to": "y"})]))
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        watch = Watch()
        watch_page(page, watch)
        for path in ("/runs", f"/runs/{paused.run_id}"):
            page.goto(server.url + path)
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} is {overflow}px wider than the phone"
        shot(page, "phone-run-paused")
        assert watch.problems() == []
    finally:
        context.close()
