"""Model descriptions as served by ``/v1/models``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(extra="allow")
    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


class ModelInfo(BaseModel):
    """A model as listed by ``/v1/models``, with context window, capabilities and price."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "modelyard"
    provider: str = ""
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: list[str] = Field(default_factory=list)
    price: ModelPrice | None = None
