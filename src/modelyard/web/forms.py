"""Reading the workbench's forms into chat requests: model pickers, templates, system prompt and parameters."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any

import orjson

from modelyard import errors
from modelyard.storage.sql import SQLStore
from modelyard.templates import INPUT_VARIABLE, TemplateLibrary
from modelyard.types.chat import Message
from modelyard.types.models import ModelInfo
from modelyard.web.base import form_number, form_text

RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass
class ModelGroup:
    """Models of one provider, for an ``<optgroup>``."""

    provider: str
    models: list[ModelInfo]


def model_groups(models: list[ModelInfo]) -> list[ModelGroup]:
    """Models grouped by provider (aliases under "aliases")."""
    keyed = sorted(models, key=lambda m: (m.provider or "aliases", m.id))
    return [ModelGroup(p, list(ms)) for p, ms in groupby(keyed, key=lambda m: m.provider or "aliases")]


def chosen_model(form: Any, name: str = "model") -> str:
    """The model picked in a picker: the typed "other" model wins over the select."""
    return form_text(form, f"{name}_other") or form_text(form, name)


def request_params(form: Any) -> dict[str, Any]:
    """Sampling parameters from the form (unset fields are left out)."""
    params: dict[str, Any] = {}
    for name, kind in (("temperature", float), ("top_p", float), ("max_tokens", int), ("seed", int)):
        value = form_number(form, name, kind)
        if value is not None:
            params[name] = value
    stop = [s for s in form_text(form, "stop").split("\n") if s.strip()]
    if stop:
        params["stop"] = stop[:4]
    params.update(_response_format(form))
    return params


def _response_format(form: Any) -> dict[str, Any]:
    kind = form_text(form, "response_format", "text")
    if kind not in RESPONSE_FORMATS:
        raise errors.BadRequestError("unknown response format", param="response_format")
    if kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if kind == "json_schema":
        try:
            schema = orjson.loads(form_text(form, "json_schema") or "{}")
        except orjson.JSONDecodeError:
            raise errors.BadRequestError("the JSON schema is not valid JSON", param="json_schema") from None
        if not isinstance(schema, dict):
            raise errors.BadRequestError("the JSON schema must be an object", param="json_schema")
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}}
    return {}


async def prompt_messages(store: SQLStore, settings: Any, form: Any) -> tuple[list[Message], dict[str, Any]]:
    """Messages from the form's template (with its variables) or system prompt, and the template's params.

    A system prompt typed in the form replaces the template's.
    """
    prompt, system = form_text(form, "prompt"), form_text(form, "system")
    name = form_text(form, "template")
    params: dict[str, Any] = {}
    if name:
        template = await TemplateLibrary(settings, source=store.prompts).get(name)
        values = {v: form_text(form, f"var_{v}") for v in template.variables() if v != INPUT_VARIABLE}
        values = {k: v for k, v in values.items() if v}
        rendered = template.render(values, prompt or None)
        messages = [m for m in rendered.messages if not (system and m.role == "system")]
        params = dict(rendered.params)
    else:
        if not prompt:
            raise errors.BadRequestError("write a prompt first", param="prompt")
        messages = [Message(role="user", content=prompt)]
    if system:
        messages.insert(0, Message(role="system", content=system))
    return messages, params
