"""Price table and cost: worked examples per provider, lookups, overrides, billed vs computed."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from modelyard.errors import ConfigError
from modelyard.pricing import Cost, PriceCatalog, billed_cost, combine, compute_cost
from modelyard.pricing.catalog import FREE, PriceEntry, bundled_table, parse_table
from modelyard.types import CompletionTokensDetails, PromptTokensDetails, Usage

M = 1_000_000


def usage(
    prompt: int, completion: int, *, cached: int = 0, written: int = 0, reasoning: int = 0, **extra: Any
) -> Usage:
    """An OpenAI-format usage block: prompt_tokens includes cached and written tokens."""
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached, cache_creation_tokens=written),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
        **extra,
    )


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog().load()


# ------------------------------------------------------------------------------------ worked examples


def test_gpt_4o_mini_cached_tokens_are_not_billed_twice(catalog: PriceCatalog) -> None:
    # 1,000 prompt tokens of which 600 cached, 200 completion. $0.15 in, $0.075 cached, $0.60 out per 1M.
    cost = catalog.cost("openai/gpt-4o-mini", usage(1_000, 200, cached=600))
    assert cost.input == pytest.approx(400 * 0.15 / M)
    assert cost.cached_input == pytest.approx(600 * 0.075 / M)
    assert cost.output == pytest.approx(200 * 0.60 / M)
    assert cost.total == pytest.approx(0.000225)
    assert (cost.source, cost.known, cost.computed) == ("computed", True, cost.total)
    # The classic bug bills all 1,000 prompt tokens at the input price and the 600 cached ones again.
    assert cost.total != pytest.approx((1_000 * 0.15 + 600 * 0.075 + 200 * 0.60) / M)


def test_claude_sonnet_4_5_cache_reads_and_writes(catalog: PriceCatalog) -> None:
    # Anthropic reports input 1,000 + cache read 6,000 + cache write 3,000; in OpenAI form the prompt is 10,000.
    cost = catalog.cost("anthropic/claude-sonnet-4-5", usage(10_000, 500, cached=6_000, written=3_000))
    assert cost.input == pytest.approx(1_000 * 3.00 / M)
    assert cost.cached_input == pytest.approx(6_000 * 0.30 / M)
    assert cost.cache_write == pytest.approx(3_000 * 3.75 / M)
    assert cost.output == pytest.approx(500 * 15.00 / M)
    assert cost.total == pytest.approx(0.003 + 0.0018 + 0.01125 + 0.0075)


def test_claude_sonnet_4_5_over_200k_uses_the_long_context_tier(catalog: PriceCatalog) -> None:
    cost = catalog.cost("anthropic/claude-sonnet-4-5-20250929", usage(250_000, 1_000, cached=50_000))
    assert cost.input == pytest.approx(200_000 * 6.00 / M)
    assert cost.cached_input == pytest.approx(50_000 * 0.60 / M)
    assert cost.output == pytest.approx(1_000 * 22.50 / M)


def test_gemini_2_5_flash_thoughts_are_billed_as_output(catalog: PriceCatalog) -> None:
    # 1,500 completion tokens of which 1,200 are thoughts: all 1,500 at the $2.50 output price.
    cost = catalog.cost("gemini/gemini-2.5-flash", usage(2_000, 1_500, reasoning=1_200))
    assert cost.input == pytest.approx(2_000 * 0.30 / M)
    assert cost.output == pytest.approx(1_500 * 2.50 / M)
    assert cost.reasoning == 0.0
    assert cost.total == pytest.approx(0.0006 + 0.00375)


def test_gemini_2_5_pro_long_prompt(catalog: PriceCatalog) -> None:
    cost = catalog.cost("gemini/gemini-2.5-pro", usage(300_000, 1_000, cached=100_000))
    assert cost.input == pytest.approx(200_000 * 2.50 / M)
    assert cost.cached_input == pytest.approx(100_000 * 0.25 / M)
    assert cost.output == pytest.approx(1_000 * 15.00 / M)
    short = catalog.cost("gemini/gemini-2.5-pro", usage(200_000, 1_000))
    assert short.input == pytest.approx(200_000 * 1.25 / M)  # the threshold itself is still the base tier


def test_openai_reasoning_tokens_are_output(catalog: PriceCatalog) -> None:
    cost = catalog.cost("openai/o4-mini", usage(1_000, 3_000, reasoning=2_500))
    assert cost.output == pytest.approx(3_000 * 4.40 / M)
    assert cost.total == pytest.approx((1_000 * 1.10 + 3_000 * 4.40) / M)


def test_separate_reasoning_price_splits_the_completion() -> None:
    catalog = PriceCatalog({"acme/thinker": {"input": 1.0, "output": 4.0, "reasoning": 2.0}})
    cost = catalog.cost("acme/thinker", usage(1_000, 3_000, reasoning=2_500))
    assert cost.output == pytest.approx(500 * 4.0 / M)
    assert cost.reasoning == pytest.approx(2_500 * 2.0 / M)
    assert cost.total == pytest.approx((1_000 * 1.0 + 500 * 4.0 + 2_500 * 2.0) / M)


def test_kimi_cache_hits(catalog: PriceCatalog) -> None:
    cost = catalog.cost("moonshot/kimi-k2-0905-preview", usage(10_000, 1_000, cached=8_000))
    assert cost.total == pytest.approx((2_000 * 0.60 + 8_000 * 0.15 + 1_000 * 2.50) / M)


def test_deepseek_reasoner(catalog: PriceCatalog) -> None:
    cost = catalog.cost("deepseek/deepseek-reasoner", usage(5_000, 2_000, cached=4_000, reasoning=1_500))
    assert cost.total == pytest.approx((1_000 * 0.28 + 4_000 * 0.028 + 2_000 * 0.42) / M)


def test_grok_4_doubles_over_128k(catalog: PriceCatalog) -> None:
    small = catalog.cost("xai/grok-4", usage(1_000, 100))
    big = catalog.cost("xai/grok-4-0709", usage(150_000, 100))
    assert small.total == pytest.approx((1_000 * 3.0 + 100 * 15.0) / M)
    assert big.total == pytest.approx((150_000 * 6.0 + 100 * 30.0) / M)


def test_no_cached_price_bills_cached_tokens_as_input(catalog: PriceCatalog) -> None:
    cost = catalog.cost("mistral/mistral-small-latest", usage(1_000, 0, cached=400))
    assert cost.total == pytest.approx(1_000 * 0.10 / M)


@pytest.mark.parametrize(
    "model", ["local/smollm2", "ollama/llama3.2", "vllm/qwen", "llamacpp/x", "lmstudio/y", "fake/echo"]
)
def test_local_models_cost_zero(catalog: PriceCatalog, model: str) -> None:
    cost = catalog.cost(model, usage(10_000, 5_000, cached=1_000))
    assert (cost.total, cost.known, cost.source) == (0.0, True, "computed")
    assert catalog.price(model) is not None


def test_unknown_model_is_unknown(catalog: PriceCatalog) -> None:
    cost = catalog.cost("acme/mystery-model", usage(1_000, 1_000))
    assert cost == Cost()
    assert (cost.known, cost.total, cost.source, cost.computed) == (False, 0.0, "none", None)
    assert catalog.price("acme/mystery-model") is None
    assert catalog.context_window("acme/mystery-model") is None
    assert catalog.cost("openai/gpt-4o", None).known is False


def test_inconsistent_usage_never_goes_negative(catalog: PriceCatalog) -> None:
    # An adapter that forgot to fold cached tokens into prompt_tokens: the uncached part is clamped at 0.
    cost = catalog.cost("openai/gpt-4o", usage(100, 10, cached=500))
    assert cost.input == 0.0 and cost.total > 0


# --------------------------------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("openai/gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai/o3-2025-04-16", "openai/o3"),
        ("openai/gpt-5-2025-08-07", "openai/gpt-5"),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
        ("xai/grok-4-0709", "xai/grok-4"),
        ("mistral/mistral-large-2411", "mistral/mistral-large-2411"),
        ("mistral/mistral-small-2506", "mistral/mistral-small-latest"),
        ("OpenAI/GPT-4o", "openai/gpt-4o"),
        ("gpt-4o", "openai/gpt-4o"),
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5"),
        ("groq/openai/gpt-oss-120b", "groq/openai/gpt-oss-120b"),
        ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "together/meta-llama/llama-3.3-70b-instruct-turbo"),
        ("openrouter/openai/gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openrouter/anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),
        ("openrouter/google/gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ("openrouter/x-ai/grok-4", "xai/grok-4"),
    ],
)
def test_lookup(catalog: PriceCatalog, name: str, row: str) -> None:
    assert catalog.match(name) == row


@pytest.mark.parametrize(
    "name",
    [
        "openai/gpt-4o-audio-preview",
        "openai/gpt-4o-mini-tts",
        "gemini/gemini-2.5",
        "acme/gpt-4o",
        "openrouter/acme/thing",
        "o3-mini-high",
    ],
)
def test_no_false_matches(catalog: PriceCatalog, name: str) -> None:
    assert catalog.match(name) is None


def test_dated_snapshot_has_the_base_price(catalog: PriceCatalog) -> None:
    assert catalog.price("openai/gpt-4o-2024-08-06") == catalog.price("openai/gpt-4o")
    assert catalog.price("openai/gpt-4o-mini-2024-07-18") != catalog.price("openai/gpt-4o")


def test_openrouter_free_variant(catalog: PriceCatalog) -> None:
    cost = catalog.cost("openrouter/meta-llama/llama-3.3-70b-instruct:free", usage(1_000, 1_000))
    assert (cost.total, cost.known) == (0.0, True)


def test_bare_name_must_be_unambiguous() -> None:
    table = parse_table({"models": {"a/shared": {"input": 1}, "b/shared": {"input": 2}, "a/solo": {"input": 3}}})
    catalog = PriceCatalog(table=table)
    assert catalog.match("shared") is None
    assert catalog.match("a/shared") == "a/shared"
    assert catalog.match("solo") == "a/solo"


def test_context_window_and_info(catalog: PriceCatalog) -> None:
    assert catalog.context_window("openai/gpt-4.1-2025-04-14") == 1_047_576
    assert catalog.max_output_tokens("anthropic/claude-haiku-4-5") == 64_000
    info = catalog.info("gemini/gemini-2.5-pro")
    assert (info.id, info.provider, info.owned_by, info.context_window) == (
        "gemini/gemini-2.5-pro",
        "gemini",
        "gemini",
        1_048_576,
    )
    assert info.price is not None and info.price.input == 1.25
    assert (info.price.model_extra or {})["long_context"]["threshold"] == 200_000
    unknown = catalog.info("acme/x")
    assert unknown.price is None and unknown.context_window is None


# ------------------------------------------------------------------------------------------- overrides


def test_override_updates_a_bundled_row_field_by_field() -> None:
    catalog = PriceCatalog({"openai/gpt-4o": {"input": 2.0}})
    price = catalog.price("openai/gpt-4o-2024-08-06")
    assert price is not None and (price.input, price.output, price.cached_input) == (2.0, 10.0, 1.25)
    assert catalog.context_window("openai/gpt-4o") == 128_000


def test_override_adds_a_model_and_a_local_context_window() -> None:
    catalog = PriceCatalog(
        {"acme/new": {"input": 1.0, "output": 2.0, "context_window": 32_000}, "local/smollm2": {"context_window": 2048}}
    )
    assert catalog.cost("acme/new", usage(1_000, 1_000)).total == pytest.approx(3_000 / M)
    assert catalog.context_window("local/smollm2") == 2048
    assert catalog.cost("local/smollm2", usage(1_000, 1_000)).total == 0.0


def test_extra_free_providers() -> None:
    catalog = PriceCatalog(free_providers=["homelab"])
    assert catalog.cost("homelab/qwen3", usage(1_000, 1_000)).known
    assert not PriceCatalog().cost("homelab/qwen3", usage(1_000, 1_000)).known


@pytest.mark.parametrize("bad", [{"input": -1}, {"inptu": 1.0}, {"context_window": "big"}])
def test_bad_override_is_a_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PriceCatalog({"acme/x": bad})


# ------------------------------------------------------------------------------------ billed vs computed


def test_combine_keeps_the_computed_figure(catalog: PriceCatalog) -> None:
    computed = catalog.cost("openai/gpt-4o", usage(1_000, 100))
    billed = combine(computed, 0.0042)
    assert (billed.total, billed.source, billed.billed, billed.known) == (0.0042, "billed", 0.0042, True)
    assert billed.computed == pytest.approx(computed.total)
    assert billed.input == computed.input
    assert combine(computed, None) is computed


def test_combine_with_an_unknown_model() -> None:
    billed = combine(Cost(), 0.01)
    assert (billed.total, billed.known, billed.computed, billed.source) == (0.01, True, None, "billed")


def test_charge_reads_the_billed_cost_from_usage(catalog: PriceCatalog) -> None:
    reported = usage(1_000, 100, cost=0.0031)
    assert billed_cost(reported) == 0.0031
    charge = catalog.charge("openrouter/openai/gpt-4o", reported)
    assert (charge.total, charge.source) == (0.0031, "billed")
    assert charge.computed == pytest.approx((1_000 * 2.5 + 100 * 10.0) / M)
    assert billed_cost(usage(1, 1)) is None and billed_cost(None) is None
    assert catalog.charge("openai/gpt-4o", usage(1_000, 100)).source == "computed"


def test_compute_cost_on_a_bare_entry() -> None:
    cost = compute_cost(PriceEntry(input=1.0, output=2.0), usage(M, M))
    assert cost.total == pytest.approx(3.0)


def test_free_models_cost_what_their_zero_prices_compute() -> None:
    reported = usage(1_000, 100)
    assert compute_cost(FREE, reported) == compute_cost(PriceEntry(), reported)
    assert compute_cost(FREE, reported).source == "computed" and compute_cost(FREE, reported).known


# ------------------------------------------------------------------------------------------ the table


def test_table_is_versioned(catalog: PriceCatalog) -> None:
    assert catalog.version == "2026-11-01"
    assert bundled_table().version == "2026-11-01"


def test_every_preset_provider_is_priced() -> None:
    presets = yaml.safe_load(
        resources.files("modelyard.providers").joinpath("presets.yaml").read_text(encoding="utf-8")
    )
    table = bundled_table()
    priced = {key.split("/", 1)[0] for key in table.models}
    for provider in presets:
        assert provider in priced | table.free_providers | table.passthrough_providers, provider


def test_rows_are_sane() -> None:
    for key, row in bundled_table().models.items():
        assert row.context_window, key
        assert row.input > 0, key
        assert row.cached_input is None or row.cached_input <= row.input, key
        assert row.cache_write is None or row.cache_write >= row.input, key
        if row.long_context is not None:
            assert row.long_context.input >= row.input and row.long_context.output >= row.output, key


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("openai/gpt-4o", (2.50, 10.00)),
        ("openai/gpt-4o-mini", (0.15, 0.60)),
        ("openai/gpt-5", (1.25, 10.00)),
        ("anthropic/claude-opus-4-1", (15.00, 75.00)),
        ("anthropic/claude-haiku-4-5", (1.00, 5.00)),
        ("gemini/gemini-2.5-flash-lite", (0.10, 0.40)),
        ("deepseek/deepseek-chat", (0.28, 0.42)),
        ("xai/grok-4", (3.00, 15.00)),
    ],
)
def test_list_prices(catalog: PriceCatalog, model: str, price: tuple[float, float]) -> None:
    found = catalog.price(model)
    assert found is not None and (found.input, found.output) == price
