"""Cost on every response: computed from tokens and the price table, or billed by the provider (both kept)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelyard.pipeline import Call, Handler, Outcome
from modelyard.types.chat import ChatChunk, ChatResponse, ModelyardInfo
from modelyard.types.embeddings import EmbeddingResponse
from modelyard.types.usage import Usage


@dataclass(frozen=True)
class Priced:
    """What a pricer says about one usage record."""

    cost: float | None
    source: str  # "computed" | "billed" | "none"
    billed: float | None = None


Pricer = Callable[[str, Usage], Priced]
"""(served ``provider/model``, usage) -> price. Injected by the gateway (it owns the price catalog)."""


def apply_price(info: ModelyardInfo, usage: Usage | None, pricer: Pricer) -> None:
    """Set cost, its source and any billed amount on ``info``."""
    if usage is None or info.served_model is None:
        return
    priced = pricer(info.served_model, usage)
    info.cost = priced.cost
    info.cost_source = priced.source  # type: ignore[assignment]
    info.billed_cost = priced.billed


class CostMiddleware:
    """Prices each response; for streams, prices the chunk that carries the final usage."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        outcome = await next(call)
        if isinstance(outcome, ChatResponse | EmbeddingResponse):
            if outcome.modelyard is not None and not outcome.modelyard.cache_hit:
                apply_price(outcome.modelyard, outcome.usage, self.pricer)
            return outcome
        info = outcome.info

        def on_usage(chunk: ChatChunk) -> None:
            if not info.cache_hit:
                apply_price(info, chunk.usage, self.pricer)

        return outcome.observe(on_usage=on_usage)
