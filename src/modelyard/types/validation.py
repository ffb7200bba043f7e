"""Parse untrusted input into the request models, turning validation failures into ``BadRequestError``."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelyard.errors import BadRequestError

M = TypeVar("M", bound=BaseModel)


def parse_model(cls: type[M], data: M | dict[str, Any]) -> M:
    """Validate ``data`` as ``cls``; the error names the first bad field in ``param``."""
    if isinstance(data, cls):
        return data
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequestError(f"invalid request: {param or 'body'}: {first['msg']}", param=param) from None
