"""Embedding request and response in the OpenAI shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.types.chat import ModelyardInfo
from modelyard.types.usage import Usage


class EmbeddingRequest(BaseModel):
    """An embeddings request: one text or a list of texts."""

    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The inputs as a list of strings (token-id inputs are not accepted here)."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(x, str) for x in self.input):
            return [str(x) for x in self.input]
        raise ValueError("token-id inputs are not supported; send text")


class Embedding(BaseModel):
    """One vector (a list of floats, or base64 when asked for)."""

    model_config = ConfigDict(extra="allow")
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    """Embedding vectors, in input order."""

    model_config = ConfigDict(extra="allow")
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage = Field(default_factory=Usage)
    modelyard: ModelyardInfo | None = None

    def vectors(self) -> list[list[float]]:
        return [d.embedding for d in self.data if isinstance(d.embedding, list)]
