"""Token usage, with the cached and reasoning token details providers report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PromptTokensDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    cached_tokens: int = 0
    cache_creation_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    reasoning_tokens: int = 0
    audio_tokens: int | None = None


class Usage(BaseModel):
    """Token counts. ``prompt_tokens`` includes cached tokens; ``completion_tokens`` includes reasoning."""

    model_config = ConfigDict(extra="allow")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        return self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else 0

    @property
    def reasoning_tokens(self) -> int:
        return self.completion_tokens_details.reasoning_tokens if self.completion_tokens_details else 0

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> Usage:
        """Build a usage record; the total is always prompt + completion."""
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached) if cached else None,
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning) if reasoning else None,
        )
