"""Prompt templates: YAML files with a system prompt, a user prompt with ``{{variables}}``, defaults and hints.

A template is found by name in three places, first match wins: a database (any ``TemplateSource``, e.g. the
storage layer's ``SQLStore.prompts``), the user's folder (``$XDG_CONFIG_HOME/modelyard/templates/*.yaml``) and the
built-ins shipped in ``modelyard/prompts/*.yaml``.

Templates are rendered by jinja2's immutable sandbox with strict undefined values and no autoescaping (the
output is text, not HTML). Every variable a template uses must have a value or a default; ``input`` is special:
it carries piped stdin / the main prompt text and, when a template does not mention it, is appended to the user
prompt after a blank line.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelyard.config import Settings, config_dir
from modelyard.errors import BadRequestError, NotFoundError
from modelyard.types.chat import Message

logger = logging.getLogger(__name__)

Origin = Literal["builtin", "user", "db"]

#: The variable filled from piped stdin / the main prompt text.
INPUT_VARIABLE = "input"

#: A template's name: also its file name, so no path separators and no leading dot.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment


@cache
def _env() -> ImmutableSandboxedEnvironment:
    """jinja2's sandbox, imported on first use (the server never needs it unless templates are used)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateRecord(Protocol):
    """A stored template as the storage layer returns it (``StoredTemplate``): a name and parsed content."""

    @property
    def name(self) -> str: ...

    @property
    def content(self) -> dict[str, Any]: ...


#: What a source may return for one template: a record, or the template's content mapping itself.
TemplateRecordLike = TemplateRecord | Mapping[str, Any]


class TemplateSource(Protocol):
    """Where database templates come from; ``SQLStore.prompts`` (any ``PromptStore``) fits as it is."""

    async def get_template(self, name: str) -> TemplateRecordLike | None: ...

    async def list_templates(self) -> Sequence[TemplateRecordLike]: ...


class RenderedPrompt(BaseModel):
    """A rendered template: chat messages (``[system?, user]``) plus the template's suggested model and params."""

    template: str
    messages: list[Message]
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def system(self) -> str | None:
        """The system prompt, if the template has one."""
        return next((m.text() for m in self.messages if m.role == "system"), None)

    @property
    def prompt(self) -> str:
        """The user prompt."""
        return next((m.text() for m in self.messages if m.role == "user"), "")


def _scalar_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class PromptTemplate(BaseModel):
    """One prompt template. ``prompt`` may be empty: the user message is then the ``input`` alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    system: str | None = None
    prompt: str = ""
    defaults: dict[str, str] = Field(default_factory=dict, description="variable -> default value")
    model: str | None = Field(default=None, description="suggested model")
    params: dict[str, Any] = Field(default_factory=dict, description="suggested request params")
    origin: Origin = "user"

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        """A YAML key left empty (``defaults:``) means 'not set'."""
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @field_validator("defaults", mode="before")
    @classmethod
    def _stringify_defaults(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): _scalar_text(item) for key, item in value.items()}
        return value

    @classmethod
    def from_yaml(cls, text: str, *, name: str | None = None, origin: Origin = "user") -> PromptTemplate:
        """Parse YAML text (``yaml.safe_load``); ``name`` overrides the one in the text."""
        content = _load_yaml(text, name or "<template>")
        key = name or content.get("name")
        if not isinstance(key, str):
            raise BadRequestError("a template needs a name", param="name", code="invalid_template")
        return template_from_content(content, name=key, origin=origin)

    def to_yaml(self) -> str:
        """The template as YAML (multi-line text as literal blocks), without its origin."""
        data = self.model_dump(exclude={"origin"}, exclude_none=True)
        data = {key: value for key, value in data.items() if value not in ({}, "") or key in ("name", "prompt")}
        return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)

    def variables(self) -> list[str]:
        """The variables used in the system prompt and then the prompt, in order of first use."""
        return _variables_of(self._parsed())

    def render(self, values: Mapping[str, str] | None = None, input: str | None = None) -> RenderedPrompt:
        """Fill the template: ``values`` over ``defaults``; ``input`` fills ``{{input}}`` or is appended."""
        given = dict(values or {})
        piped = input if input is not None else given.get(INPUT_VARIABLE)
        context: dict[str, Any] = {**self.defaults, **given}
        if piped is not None:
            context[INPUT_VARIABLE] = piped
        parsed = self._parsed()
        used = _variables_of(parsed)
        missing = [name for name in used if name not in context]
        if missing:
            raise BadRequestError(
                f"template {self.name!r} needs a value for: {', '.join(missing)}",
                param="variables",
                code="missing_variables",
            )
        texts = {part: self._render_part(part, tree, context) for part, tree in parsed.items()}
        user = texts["prompt"]
        if piped is not None and INPUT_VARIABLE not in used:
            user = f"{user}\n\n{piped}" if user else piped
        if not user.strip():
            raise BadRequestError(f"template {self.name!r} renders an empty prompt", code="empty_prompt")
        messages = [Message(role="system", content=texts["system"])] if texts.get("system") else []
        messages.append(Message(role="user", content=user))
        return RenderedPrompt(template=self.name, messages=messages, model=self.model, params=dict(self.params))

    def _sources(self) -> dict[str, str]:
        prompt = self.prompt if self.prompt.strip() else "{{ " + INPUT_VARIABLE + " }}"
        return {"system": self.system, "prompt": prompt} if self.system else {"prompt": prompt}

    def _parsed(self) -> dict[str, nodes.Template]:
        from jinja2 import TemplateSyntaxError

        trees: dict[str, nodes.Template] = {}
        for part, source in self._sources().items():
            try:
                trees[part] = _env().parse(source)
            except TemplateSyntaxError as exc:
                raise BadRequestError(
                    f"template {self.name!r} has a syntax error in its {part} (line {exc.lineno}): {exc.message}",
                    param="template",
                    code="template_syntax_error",
                ) from exc
        return trees

    def _render_part(self, part: str, tree: nodes.Template, context: dict[str, Any]) -> str:
        try:
            return _env().from_string(tree).render(context).strip()
        except Exception as exc:  # anything a template's own code raises is the template's fault
            raise BadRequestError(
                f"template {self.name!r} failed to render its {part}: {type(exc).__name__}: {exc}",
                param="template",
                code="template_error",
            ) from exc


def _variables_of(trees: Mapping[str, nodes.Template]) -> list[str]:
    from jinja2 import meta, nodes

    ordered: dict[str, None] = {}
    for tree in trees.values():
        undeclared = meta.find_undeclared_variables(tree) - set(_env().globals)
        for node in tree.find_all(nodes.Name):
            if node.ctx == "load" and node.name in undeclared:
                ordered.setdefault(node.name, None)
        for name in sorted(undeclared):
            ordered.setdefault(name, None)
    return list(ordered)


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as ``|`` blocks (a subclass, so the global dumper is untouched)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def _load_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadRequestError(f"template {where} is not valid YAML: {exc}", code="invalid_template") from exc
    if not isinstance(content, dict):
        raise BadRequestError(f"template {where} must be a YAML mapping", code="invalid_template")
    return content


def template_from_content(content: Mapping[str, Any], *, name: str, origin: Origin) -> PromptTemplate:
    """Build and syntax-check a template from parsed content; ``name`` (file stem or DB key) wins over its own."""
    try:
        template = PromptTemplate.model_validate({**content, "name": name, "origin": origin})
    except ValidationError as exc:
        raise BadRequestError(f"template {name!r} ({origin}) is invalid: {exc}", code="invalid_template") from exc
    template.variables()  # raises on syntax errors now rather than at first use
    return template


def _record_parts(record: TemplateRecordLike) -> tuple[str | None, dict[str, Any]]:
    """Adapt what a ``TemplateSource`` returns: a record with ``.name``/``.content`` or a content mapping."""
    if isinstance(record, Mapping):
        name = record.get("name")
        return (name if isinstance(name, str) else None), dict(record)
    return record.name, dict(record.content)


def _builtin_dir() -> Traversable:
    return resources.files("modelyard").joinpath("prompts")


def _valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


_Templates = list[PromptTemplate]


class TemplateLibrary:
    """Finds templates by name: database source > user folder > built-ins."""

    def __init__(
        self, settings: Settings | None = None, source: TemplateSource | None = None, *, user_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self._user_dir = user_dir

    @property
    def user_dir(self) -> Path:
        """The user's template folder (``config_dir()/templates`` unless given)."""
        return self._user_dir if self._user_dir is not None else config_dir() / "templates"

    async def get(self, name: str) -> PromptTemplate:
        """The template called ``name``; ``NotFoundError`` (with close names) when there is none."""
        if _valid_name(name):
            found = await self._find(name)
            if found is not None:
                return found
        names = [template.name for template in await self.list()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise NotFoundError(f"no template named {name!r}{hint}", param="template", code="template_not_found")

    def save_user(self, template: PromptTemplate, *, overwrite: bool = False) -> Path:
        """Write ``template`` as YAML into the user folder and return its path (refuses to overwrite unless told)."""
        path = self.user_dir / f"{template.name}.yaml"
        if path.exists() and not overwrite:
            raise BadRequestError(f"template {template.name!r} already exists at {path}", code="template_exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(template.to_yaml(), encoding="utf-8")
        os.replace(partial, path)
        return path

    async def _find(self, name: str) -> PromptTemplate | None:
        if self.source is not None:
            record = await self.source.get_template(name)
            if record is not None:
                return template_from_content(_record_parts(record)[1], name=name, origin="db")
        path = self.user_dir / f"{name}.yaml"
        if path.is_file():
            return self._from_file(path, name, "user")
        builtin = _builtin_dir().joinpath(f"{name}.yaml")
        if builtin.is_file():
            return self._from_file(builtin, name, "builtin")
        return None

    @staticmethod
    def _from_file(path: Path | Traversable, name: str, origin: Origin) -> PromptTemplate:
        content = _load_yaml(path.read_text(encoding="utf-8"), f"{name!r} ({path})")
        return template_from_content(content, name=name, origin=origin)

    def _file_loaders(self) -> dict[str, Callable[[], PromptTemplate]]:
        loaders: dict[str, Callable[[], PromptTemplate]] = {}
        folders: list[tuple[Path | Traversable, Origin]] = [(_builtin_dir(), "builtin")]
        if self.user_dir.is_dir():
            folders.append((self.user_dir, "user"))
        for folder, origin in folders:
            for entry in folder.iterdir():
                stem = entry.name.removesuffix(".yaml")
                if entry.name.endswith(".yaml") and entry.is_file() and _valid_name(stem):
                    loaders[stem] = partial(self._from_file, entry, stem, origin)
        return loaders

    async def list(self) -> _Templates:
        """Every template by name (each with its ``origin``), sorted; a broken one is logged and left out."""
        loaders = self._file_loaders()
        for record in await self.source.list_templates() if self.source is not None else []:
            name, content = _record_parts(record)
            if name is not None and _valid_name(name):
                loaders[name] = partial(template_from_content, content, name=name, origin="db")
        templates: _Templates = []
        for name in sorted(loaders):
            try:
                templates.append(loaders[name]())
            except BadRequestError as exc:
                logger.warning("skipping template %s: %s", name, exc)
        return templates


__all__ = [
    "INPUT_VARIABLE",
    "NAME_PATTERN",
    "Origin",
    "PromptTemplate",
    "RenderedPrompt",
    "TemplateLibrary",
    "TemplateRecord",
    "TemplateRecordLike",
    "TemplateSource",
    "template_from_content",
]
