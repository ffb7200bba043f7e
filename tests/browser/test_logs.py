"""Logs: full-text search, filters, the detail view, a diff of two responses, export, and replay."""

from __future__ import annotations

import csv
import io
import json
import pathlib
from typing import Any

from modelyard.pipeline import CallOptions
from tests.browser.conftest import Watch, shot, wait_for_log
from tests.support.live_server import LiveServer


def _seed(server: LiveServer, text: str, model: str, tag: str) -> str:
    """One logged request, made through the server's own gateway."""
    request = {"model": model, "messages": [{"role": "user", "content": text}]}
    response = server.run(server.gateway.chat(request, CallOptions(tags=[tag])))
    request_id: str = response.modelyard.request_id
    wait_for_log(server, request_id)
    return request_id


def test_search_open_diff_export_and_replay(page: Any, watch: Watch, server: LiveServer) -> None:
    first = _seed(server, "the zebrafish swims north\nand rests", "fake/alpha", "aquarium")
    second = _seed(server, "the zebrafish swims south\nand rests", "fake/beta", "aquarium")
    _seed(server, "an unrelated walrus", "fake/alpha", "zoo")

    page.goto(server.url + "/logs")
    page.fill("#q", "zebrafish")
    page.wait_for_function("() => document.querySelectorAll('.logs-table tbody tr').length === 2")
    assert "q=zebrafish" in page.url  # the filtered view is a link
    assert "walrus" not in page.locator(".logs-table").inner_text()
    page.select_option("#f-model", "fake/beta")
    page.wait_for_function("() => document.querySelectorAll('.logs-table tbody tr').length === 1")
    page.select_option("#f-model", "")
    page.wait_for_function("() => document.querySelectorAll('.logs-table tbody tr').length === 2")
    shot(page, "logs")

    with page.expect_download() as jsonl_download:
        page.click("#export-jsonl")
    rows = [json.loads(line) for line in pathlib.Path(jsonl_download.value.path()).read_text().splitlines()]
    assert {r["request_id"] for r in rows} == {first, second}
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    table = list(csv.DictReader(io.StringIO(pathlib.Path(csv_download.value.path()).read_text())))
    assert {r["request_id"] for r in table} == {first, second}

    page.check(f"input[value='{first}']")
    page.check(f"input[value='{second}']")
    page.click("#diff-button")
    page.wait_for_url("**/logs/diff**")
    assert page.locator("tr.diff-changed").count() == 1
    assert page.locator("tr.diff-same").count() == 1
    assert page.locator("tr.diff-changed mark").all_inner_texts() == ["south", "north"]  # newest (left) first
    shot(page, "logs-diff")

    page.goto(server.url + "/logs?q=zebrafish")
    page.click(f"a[href='/logs/{first}']")
    page.wait_for_url(f"**/logs/{first}")
    assert "the zebrafish swims north" in page.locator(".detail-bodies").inner_text()
    assert page.locator("table.data").first.locator("tbody tr").count() == 1  # one attempt
    assert "fake/alpha" in page.locator("table.data").first.inner_text()
    page.fill("#model1_other", "fake/replayed")
    page.click("#replay-button")
    page.wait_for_function("() => document.querySelectorAll('#replay-results .run.done').length === 2")
    models = page.locator("#replay-results .model-name").all_inner_texts()
    assert models == ["fake/alpha", "fake/replayed"]
    assert "the zebrafish swims north" in page.locator("#replay-results .column").nth(1).inner_text()
    shot(page, "log-detail")
