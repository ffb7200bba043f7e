"""Safe rendering of model output and logged content: markdown to HTML that can never carry script.

Raw HTML in the source is escaped (``html=False``), images are not rendered (a remote image would be a
request leaving the machine), and links keep only ``http``, ``https``, ``mailto`` and same-site targets.
Everything else in the workbench goes through Jinja2 with autoescaping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from modelyard.types.models import ModelInfo

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def safe_link(url: str) -> bool:
    """True for http(s)/mailto links and same-site paths or fragments; never ``javascript:``, ``data:``…"""
    cleaned = "".join(ch for ch in url.strip() if ch.isprintable() and not ch.isspace())
    if cleaned.startswith("//"):
        return False  # protocol-relative: another host
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    if scheme:
        return scheme in SAFE_SCHEMES
    return ":" not in cleaned.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _link_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    return renderer.renderToken(tokens, idx, options, env)


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.disable("image")
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _build()


def markdown(text: str | None) -> Markup:
    """Markdown to HTML, safe to insert in a page (raw HTML escaped, unsafe links left as text)."""
    return Markup(_MD.render(text or ""))  # noqa: S704 - markdown-it escapes everything (html=False)


def pretty_json(value: Any) -> str:
    """Indented JSON for display (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def money(value: float | None) -> str:
    """A cost in dollars, with enough digits for fractions of a cent."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.6f}".rstrip("0")
    return f"${value:,.4f}".rstrip("0").rstrip(".")


def number(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators ("—" when unknown)."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def millis(value: float | None) -> str:
    """Milliseconds as "850 ms" or "2.4 s"."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:,.0f} ms"
    seconds = f"{value / 1000:,.2f}".rstrip("0").rstrip(".")
    return f"{seconds} s"


def when(value: datetime | None) -> str:
    """A UTC timestamp, short."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def message_text(content: Any) -> str:
    """The text of a message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def model_detail(model: ModelInfo) -> str:
    """ "8k ctx · $0.15/$0.60 per 1M" (or "free")."""
    parts = []
    if model.context_window:
        window = model.context_window
        parts.append(f"{window // 1000}k ctx" if window >= 1000 else f"{window} ctx")
    price = model.price
    if price is None or (price.input == 0 and price.output == 0):
        parts.append("free" if price is not None or model.provider == "local" else "price unknown")
    else:
        parts.append(f"${price.input:g}/${price.output:g} per 1M")
    return " · ".join(parts)


FILTERS = {
    "model_detail": model_detail,
    "markdown": markdown,
    "pretty_json": pretty_json,
    "money": money,
    "number": number,
    "millis": millis,
    "when": when,
    "message_text": message_text,
}
