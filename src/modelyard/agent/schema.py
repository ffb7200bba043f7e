"""The JSON schema of a Python function's arguments, from its type hints and its docstring.

Type hints become JSON schema through pydantic (so pydantic models, enums, ``Literal``, ``Annotated[..., Field()]``
and defaults all work); the docstring gives the tool's description and each argument's (Google ``Args:``,
Sphinx ``:param x:`` and NumPy ``Parameters`` styles).

Example::

    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
        '''Current weather in a city.

        Args:
            city: The city name, e.g. "Paris".
        '''

    signature = FunctionSignature.of(get_weather)
    signature.schema["properties"]["city"]["description"]   # 'The city name, e.g. "Paris".'
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import GenerateJsonSchema

_GOOGLE = re.compile(r"^(args|arguments|parameters|params|keyword args|keyword arguments)\s*:\s*$", re.I)
_SECTION = re.compile(
    r"^(returns?|yields?|raises?|examples?|notes?|see also|attributes|references|todo|warnings?)\s*:?\s*$", re.I
)
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ITEM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(:.*)?$")
_SKIPPED = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class _NoFieldTitles(GenerateJsonSchema):
    """Leave out the ``title`` pydantic derives from each argument name (noise for the model)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {argument: description})`` from a Google, Sphinx or NumPy style docstring."""
    parser = _DocParser()
    lines = inspect.cleandoc(doc or "").splitlines()
    index = 0
    while index < len(lines):
        raw, line = lines[index], lines[index].strip()
        index += 1
        underlined = index < len(lines) and bool(re.fullmatch(r"-{3,}", lines[index].strip()))
        if line.lower() in ("parameters", "other parameters") and underlined:
            parser.enter("numpy")
            index += 1
        elif _GOOGLE.match(line):
            parser.enter("google")
        elif _SECTION.match(line) or (underlined and line):
            parser.enter("other")
        else:
            parser.add(raw, line)
    params = {k: " ".join(v.split()) for k, v in parser.params.items()}
    return "\n".join(parser.description).strip(), params


class _DocParser:
    """Line-by-line state: which section we are in, which argument a line continues."""

    def __init__(self) -> None:
        self.description: list[str] = []
        self.params: dict[str, str] = {}
        self.mode = "text"
        self.current = ""
        self.item_indent: int | None = None

    def enter(self, mode: str) -> None:
        self.mode, self.current, self.item_indent = mode, "", None

    def add(self, raw: str, line: str) -> None:
        sphinx = _SPHINX_ITEM.match(line)
        if sphinx:
            self.enter("sphinx")
            self.current = sphinx.group(1)
            self.params[self.current] = sphinx.group(2).strip()
        elif line.startswith(":"):
            self.enter("other")
        elif self.mode == "text":
            self.description.append(line)
        elif line and self.mode in ("google", "numpy", "sphinx"):
            self._argument_line(len(raw) - len(raw.lstrip()), line)

    def _argument_line(self, indent: int, line: str) -> None:
        if self.item_indent is None:
            self.item_indent = indent
        item = None
        if self.mode != "sphinx" and indent <= self.item_indent:
            item = (_GOOGLE_ITEM if self.mode == "google" else _NUMPY_ITEM).match(line)
        if item is not None:
            self.current = item.group(1).lstrip("*")
            self.params[self.current] = item.group(3).strip() if self.mode == "google" else ""
        elif self.current:
            self.params[self.current] = f"{self.params[self.current]} {line}".strip()


@dataclass(frozen=True)
class FunctionSignature:
    """A function's arguments as a pydantic model and a JSON schema, and how to call it with parsed values."""

    description: str
    schema: dict[str, Any]
    model: type[BaseModel]
    positional: tuple[str, ...]

    @classmethod
    def of(cls, fn: Callable[..., Any], name: str | None = None) -> FunctionSignature:
        """Build the signature of ``fn`` (type hints resolved, docstring parsed)."""
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        description, documented = parse_docstring(inspect.getdoc(fn))
        fields: dict[str, Any] = {}
        positional: list[str] = []
        for parameter in signature.parameters.values():
            if parameter.kind in _SKIPPED:
                continue
            if parameter.kind == inspect.Parameter.POSITIONAL_ONLY:
                positional.append(parameter.name)
            annotation = hints.get(parameter.name, Any)
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, Field(default, description=documented.get(parameter.name)))
        title = name or getattr(fn, "__name__", "tool")
        model = create_model(f"{title}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        schema = model.model_json_schema(schema_generator=_NoFieldTitles)
        schema.pop("title", None)
        return cls(description, schema, model, tuple(positional))

    def bind(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate ``arguments`` (raises ``pydantic.ValidationError``) into ``(args, kwargs)`` for the call."""
        parsed = self.model.model_validate(arguments)
        args = [getattr(parsed, name) for name in self.positional]
        kwargs = {name: getattr(parsed, name) for name in parsed.model_fields_set if name not in self.positional}
        return args, kwargs
