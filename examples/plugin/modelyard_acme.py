"""A provider plugin for a made-up non-OpenAI API ("Acme"): one module, registered by an entry point.

The Acme API takes ``POST {base_url}/generate`` with ``{"system", "prompt", "max_tokens"}`` and answers
``{"id", "output", "tokens_in", "tokens_out", "stop"}``; errors are ``{"error": {"code", "message"}}``.
Register it in your package's pyproject.toml:

    [project.entry-points."modelyard.providers"]
    acme = "modelyard_acme:AcmeProvider"

then add a row with that kind to modelyard.yaml:

    providers:
      acme:
        kind: acme
        base_url: https://api.acme.example/v1
        api_key_env: ACME_API_KEY

and call ``acme/<model>`` like any other model: retries, fallbacks, limits, logging and cost all apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from modelyard import errors
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.streaming import stream_from_response
from modelyard.types import ChatChunk, ChatResponse, EmbeddingResponse, Usage

ERROR_CODES: dict[str, type[errors.ModelyardError]] = {
    "too_long": errors.ContextWindowExceededError,
    "quota": errors.BudgetExceededError,
}


def parse_error(status: int, body: Any) -> tuple[type[errors.ModelyardError] | None, str | None, str | None]:
    """(error class by Acme's code, or None for the status default; message; code) — never by message text."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, None, None
    code = err.get("code") if isinstance(err.get("code"), str) else None
    return ERROR_CODES.get(code or ""), err.get("message"), code


class AcmeProvider:
    """The three-method provider protocol: ``chat``, ``stream``, ``embed`` (+ ``aclose``), a name and capabilities."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context  # the row (context.spec), the settings and the gateway's shared HTTP client
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        if not context.spec.base_url:
            raise errors.ConfigError(f"provider {self.name!r} needs a base_url", provider=self.name)
        self.url = context.spec.base_url.rstrip("/") + "/generate"

    async def chat(self, call: ProviderCall) -> ChatResponse:
        request = call.request  # the OpenAI-format request; request.model is the upstream model name
        system = "\n".join(m.text() for m in request.messages if m.role in ("system", "developer"))
        prompt = "\n".join(f"{m.role}: {m.text()}" for m in request.messages if m.role not in ("system", "developer"))
        body = {"model": request.model, "system": system, "prompt": prompt, "max_tokens": request.output_limit() or 256}
        headers = {**self.context.spec.headers, **call.headers}  # row headers, X-Request-ID, per-call headers
        if call.api_key:
            headers["Authorization"] = f"Bearer {call.api_key}"
        data, _ = await self.context.http.post_json(
            self.url,
            {**body, **call.extra_body},
            headers=headers,
            timeouts=call.timeouts,
            provider=self.name,
            model=request.model,
            parse_error=parse_error,  # non-2xx answers raise the typed error, with Retry-After read
        )
        return ChatResponse.model_validate(
            {
                "id": data["id"],
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": data["output"]},
                        "finish_reason": "length" if data.get("stop") == "max_tokens" else "stop",
                    }
                ],
                "usage": Usage.of(data["tokens_in"], data["tokens_out"]).model_dump(),
            }
        )

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        """Acme cannot stream: answer in full, then replay the answer as chunks."""
        response = await self.chat(call)
        async for chunk in stream_from_response(response):
            yield chunk

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        raise errors.UnsupportedOperationError(f"{self.name} does not serve embeddings", provider=self.name)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the gateway."""
