"""The workbench's pure parts, without a browser: safe markdown, sessions, CSRF, diff, chart scales, form reading."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData
from starlette.requests import Request

from modelyard import errors
from modelyard.web.charts import _scale, bar_chart, hbar_chart
from modelyard.web.diff import side_by_side
from modelyard.web.forms import request_params
from modelyard.web.pages.login import local_target
from modelyard.web.render import markdown, millis, money, safe_link
from modelyard.web.session import CSRF_COOKIE, Csrf, is_web_path


@pytest.mark.parametrize(
    "hostile",
    [
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox(1))",
        "[x](//evil.example/path)",
        '<a href="javascript:alert(1)">x</a>',
        "<script>alert(1)</script>",
        "```\n</code><script>alert(1)</script>\n```",
        "![tracker](https://evil.example/pixel.png)",
    ],
)
def test_markdown_never_emits_script_or_remote_images(hostile: str) -> None:
    html = str(markdown(hostile)).lower()
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript' not in html and 'href="data' not in html and 'href="//' not in html


def test_markdown_keeps_useful_formatting() -> None:
    html = str(markdown("**b** `c` [ok](https://example.com/a) [rel](/logs/1)\n\n| a |\n|---|\n| 1 |"))
    assert "<strong>b</strong>" in html and "<code>c</code>" in html and "<table>" in html
    assert 'href="https://example.com/a" rel="noopener noreferrer nofollow"' in html
    assert 'href="/logs/1"' in html


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://a.b", True),
        ("mailto:x@y.z", True),
        ("/x", True),
        ("#top", True),
        ("javascript:x", False),
        (" javascript:x", False),
        ("//evil", False),
        ("file:///etc", False),
    ],
)
def test_safe_link(url: str, ok: bool) -> None:
    assert safe_link(url) is ok


def _request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{CSRF_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "POST", "path": "/ui/x", "headers": headers, "state": {}})


def test_csrf_token_is_bound_to_the_cookie() -> None:
    csrf = Csrf("secret")
    seed = "s" * 24
    token = csrf.token(_request(seed))
    assert csrf.valid(_request(seed), token)
    assert not csrf.valid(_request("t" * 24), token)
    assert not csrf.valid(_request(None), token)
    assert not csrf.valid(_request(seed), None)
    assert not Csrf("other").valid(_request(seed), token)


def test_web_paths_never_cover_the_api() -> None:
    pages = ("/", "/chat/conv_1", "/logs/abc", "/ui/runs/x/events", "/static/app.css", "/keys", "/login", "/runs")
    pages += ("/runs/r1",)
    for path in pages:
        assert is_web_path(path)
    for path in ("/v1/chat/completions", "/v1/models", "/admin/logs", "/metrics", "/health", "/openapi.json"):
        assert not is_web_path(path)


@pytest.mark.parametrize(
    ("raw", "target"),
    [("/logs?q=1", "/logs?q=1"), ("//evil.example", "/"), ("https://evil.example", "/"), ("/\\evil", "/"), ("", "/")],
)
def test_login_only_redirects_on_site(raw: str, target: str) -> None:
    assert local_target(raw) == target


def test_side_by_side_diff_marks_changed_words() -> None:
    rows = side_by_side("same\nthe cat sat\nonly left", "same\nthe dog sat")
    assert [r.kind for r in rows] == ["same", "changed", "removed"]
    changed = rows[1]
    assert [p.text for p in changed.left_parts if p.changed] == ["cat"]
    assert [p.text for p in changed.right_parts if p.changed] == ["dog"]


def test_chart_scales_are_round_and_labels_escaped() -> None:
    assert _scale(0.036) == (0.01, 0.04)
    assert _scale(103) == (50.0, 150.0)
    assert _scale(0) == (1.0, 4.0)
    svg = str(bar_chart(["<b>"], [1.0], money, "t<i>"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "t&lt;i&gt;" in svg
    assert "&lt;script&gt;" in str(hbar_chart([("<script>", 2.0)], money, "x"))


def test_request_params_from_a_form() -> None:
    form = FormData(
        [
            ("temperature", "0.5"),
            ("max_tokens", "12"),
            ("stop", "END\n\n###"),
            ("seed", ""),
            ("response_format", "json_schema"),
            ("json_schema", '{"type": "object"}'),
        ]
    )
    params = request_params(form)
    assert params["temperature"] == 0.5 and params["max_tokens"] == 12 and params["stop"] == ["END", "###"]
    assert "seed" not in params
    assert params["response_format"]["json_schema"]["schema"] == {"type": "object"}
    with pytest.raises(errors.BadRequestError):
        request_params(FormData([("max_tokens", "many")]))
    with pytest.raises(errors.BadRequestError):
        request_params(FormData([("response_format", "json_schema"), ("json_schema", "{nope")]))


def test_durations_and_money_read_well() -> None:
    assert millis(850) == "850 ms" and millis(7700) == "7.7 s" and millis(None) == "—"
    assert money(0) == "$0" and money(0.036) == "$0.036" and money(12.5) == "$12.5"
