"""``RemoteTransport``: the SDK over HTTP to a modelyard server (same interface as in-process)."""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import orjson
from pydantic import Field

from modelyard import errors
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.retry import parse_retry_after, parse_should_retry
from modelyard.streaming import iter_sse
from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest, ChatResponse, ModelyardInfo
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo

#: Error codes of modelyard's own errors whose HTTP status alone would name another class.
MODELYARD_CODES: dict[str, type[errors.ModelyardError]] = {"config_error": errors.ConfigError}

#: Admin calls: no overall limit (an export may be long), but a server that does not answer is an error.
ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
STREAM_TIMEOUT = ADMIN_TIMEOUT


@contextlib.contextmanager
def _naming(model: str) -> Iterator[None]:
    """An error about the requested model names it, as the in-process gateway's errors do."""
    try:
        yield
    except errors.ModelyardError as exc:
        if exc.param == "model" and exc.model is None:
            exc.model = model
        raise


class RemoteInfo(ModelyardInfo):
    """``ModelyardInfo`` as a modelyard server reported it: the server's own retry and fallback counts, since its
    failed attempts are not known here (``attempts`` holds only the one that answered)."""

    reported_retries: int = Field(default=0, exclude=True, repr=False)
    reported_fallbacks: int = Field(default=0, exclude=True, repr=False)

    @property
    def retries(self) -> int:
        return self.reported_retries

    @property
    def fallbacks(self) -> int:
        return self.reported_fallbacks


def info_from_headers(headers: Mapping[str, str], requested: str) -> ModelyardInfo:
    """What the server reported about a call, rebuilt from its ``x-modelyard-*`` headers."""
    info = RemoteInfo(
        request_id=headers.get("x-request-id", ""),
        requested_model=requested,
        reported_retries=_count(headers, "x-modelyard-retries"),
        reported_fallbacks=_count(headers, "x-modelyard-fallbacks"),
    )
    info.provider = headers.get("x-modelyard-provider")
    info.served_model = headers.get("x-modelyard-model")
    cost = headers.get("x-modelyard-cost")
    info.cost = float(cost) if cost else None
    info.cache_hit = headers.get("x-modelyard-cache") == "hit"
    if info.served_model:
        info.attempts = [AttemptInfo(model=info.served_model, provider=info.provider or "", status=200)]
    return info


def _count(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(name, "")
    return int(value) if value.isdigit() else 0


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    raw = await response.read()
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    raise error_from_body(response.status, body, response.headers)


def error_from_body(status: int, body: Any, headers: Mapping[str, str] | None = None) -> errors.ModelyardError:
    """The typed error for a server's OpenAI-shaped error (by code, then by status)."""
    cls, message, code = errors.openai_error_parser(status, body)
    cls = cls or MODELYARD_CODES.get(code or "") or errors.error_class_for_status(status)
    param = body["error"].get("param") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    headers = headers or {}
    return cls(
        message or f"server answered HTTP {status}",
        status=status,
        code=code,
        param=param,
        request_id=headers.get("x-request-id"),
        retry_after=parse_retry_after(headers),
        should_retry=parse_should_retry(headers),
        body=body,
    )


class RemoteTransport:
    """Talks to ``base_url`` (a modelyard server) with one aiohttp session."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session

    def _headers(self, options: CallOptions | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if options is not None:
            headers.update(options.extra_headers)
        return headers

    def _body(self, request: ChatRequest | EmbeddingRequest, options: CallOptions, stream: bool = False) -> bytes:
        body = request.model_dump(exclude_none=True)
        if stream:
            body["stream"], body["stream_options"] = True, {"include_usage": True}
        fields = {
            "fallbacks": options.fallbacks,
            "timeout": options.timeout,
            "max_retries": options.max_retries,
            "conversation_id": options.conversation_id,
            "tags": options.tags or None,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        if options.metadata:
            body["metadata"] = {**body.get("metadata", {}), **options.metadata}
        body.update(options.extra_body)
        return orjson.dumps(body)

    def _timeout(self, options: CallOptions) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=options.timeout + 5 if options.timeout else None, sock_connect=10)

    def _unreachable(self, exc: BaseException) -> errors.ConnectionError:
        return errors.ConnectionError(f"cannot reach modelyard server at {self.base_url}: {exc}")

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        options: CallOptions | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """One JSON request (``json``, or ``data`` already encoded): (decoded answer, headers).

        An error answer raises its typed ``ModelyardError``; a server out of reach raises ``ConnectionError``.
        """
        if json is not None:
            data = orjson.dumps(json)
        timeout = self._timeout(options) if options is not None else ADMIN_TIMEOUT
        try:
            async with self.session.request(
                method, self.base_url + path, params=params, data=data, headers=self._headers(options), timeout=timeout
            ) as response:
                await _raise_for(response)
                return orjson.loads(await response.read()), response.headers
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc

    async def text_stream(self, path: str, params: Mapping[str, str] | None = None) -> AsyncIterator[str]:
        """A streamed text answer, decoded as it arrives (chunks of any size)."""
        try:
            async with self.session.get(
                self.base_url + path, params=params, headers=self._headers(), timeout=STREAM_TIMEOUT
            ) as response:
                await _raise_for(response)
                decoder = codecs.getincrementaldecoder("utf-8")()
                async for chunk in response.content.iter_any():
                    yield decoder.decode(chunk)
                yield decoder.decode(b"", final=True)
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc

    async def chat(self, request: ChatRequest, options: CallOptions) -> ChatResponse:
        with _naming(request.model):
            body = self._body(request, options)
            data, headers = await self.call("POST", "/v1/chat/completions", data=body, options=options)
        response = ChatResponse.model_validate(data)
        response.modelyard = info_from_headers(headers, request.model)
        return response

    async def stream(self, request: ChatRequest, options: CallOptions) -> ChatStream:
        try:
            response = await self.session.post(
                self.base_url + "/v1/chat/completions",
                data=self._body(request, options, stream=True),
                headers=self._headers(options),
                timeout=self._timeout(options),
            )
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        try:
            with _naming(request.model):
                await _raise_for(response)
        except BaseException:
            response.release()
            raise
        info = info_from_headers(response.headers, request.model)
        return ChatStream(_chunks(response, info), info)

    async def embed(self, request: EmbeddingRequest, options: CallOptions) -> EmbeddingResponse:
        with _naming(request.model):
            body = self._body(request, options)
            data, headers = await self.call("POST", "/v1/embeddings", data=body, options=options)
        response = EmbeddingResponse.model_validate(data)
        response.modelyard = info_from_headers(headers, request.model)
        return response

    async def models(self) -> list[ModelInfo]:
        data, _ = await self.call("GET", "/v1/models")
        return [ModelInfo.model_validate(m) for m in data["data"]]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _absorb_info(info: ModelyardInfo, data: Any) -> None:
    """Take what a chunk's ``modelyard`` object reports (a server may send cost with the final usage chunk)."""
    reported = data.get("modelyard") if isinstance(data, dict) else None
    if isinstance(reported, dict):
        known = {k: v for k, v in reported.items() if k in ModelyardInfo.model_fields and k != "request_id"}
        for name, value in ModelyardInfo.model_validate({**info.model_dump(), **known}):
            setattr(info, name, value)


async def _chunks(response: aiohttp.ClientResponse, info: ModelyardInfo) -> AsyncIterator[ChatChunk]:
    """Decode the server's SSE; an error event raises, and an end without [DONE] is an interruption."""
    try:
        async for event in iter_sse(response.content.iter_any()):
            if event.data == "[DONE]":
                return
            data = event.json()
            if isinstance(data, dict) and data.get("error"):
                raise error_from_body(502, data)
            _absorb_info(info, data)
            yield ChatChunk.model_validate(data)
        raise errors.StreamInterruptedError("the server closed the stream before it finished")
    except aiohttp.ClientPayloadError as exc:
        raise errors.StreamInterruptedError("the connection to the server broke mid-stream") from exc
    finally:
        response.release()
