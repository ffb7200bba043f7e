"""``RemoteTransport``: the SDK over HTTP to a modelyard server (same interface as in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from modelyard import errors
from modelyard.pipeline import CallOptions, ChatStream
from modelyard.retry import parse_retry_after, parse_should_retry
from modelyard.storage.base import Conversation
from modelyard.streaming import iter_sse
from modelyard.types.chat import AttemptInfo, ChatChunk, ChatRequest, ChatResponse, ModelyardInfo
from modelyard.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo


def info_from_headers(headers: Mapping[str, str], requested: str) -> ModelyardInfo:
    """What the server reported about a call, rebuilt from its ``x-modelyard-*`` headers."""
    info = ModelyardInfo(request_id=headers.get("x-request-id", ""), requested_model=requested)
    info.provider = headers.get("x-modelyard-provider")
    info.served_model = headers.get("x-modelyard-model")
    cost = headers.get("x-modelyard-cost")
    info.cost = float(cost) if cost else None
    info.cache_hit = headers.get("x-modelyard-cache") == "hit"
    if info.served_model:
        info.attempts = [AttemptInfo(model=info.served_model, provider=info.provider or "", status=200)]
    return info


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
    cls = cls or errors.error_class_for_status(status)
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

    async def _post(self, path: str, data: bytes, options: CallOptions) -> tuple[Any, Mapping[str, str]]:
        try:
            async with self.session.post(
                self.base_url + path, data=data, headers=self._headers(options), timeout=self._timeout(options)
            ) as response:
                await _raise_for(response)
                return orjson.loads(await response.read()), response.headers
        except aiohttp.ClientError as exc:
            raise errors.ConnectionError(f"cannot reach modelyard server at {self.base_url}: {exc}") from exc

    async def chat(self, request: ChatRequest, options: CallOptions) -> ChatResponse:
        data, headers = await self._post("/v1/chat/completions", self._body(request, options), options)
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
            raise errors.ConnectionError(f"cannot reach modelyard server at {self.base_url}: {exc}") from exc
        try:
            await _raise_for(response)
        except BaseException:
            response.release()
            raise
        return ChatStream(_chunks(response), info_from_headers(response.headers, request.model))

    async def embed(self, request: EmbeddingRequest, options: CallOptions) -> EmbeddingResponse:
        data, headers = await self._post("/v1/embeddings", self._body(request, options), options)
        response = EmbeddingResponse.model_validate(data)
        response.modelyard = info_from_headers(headers, request.model)
        return response

    async def _get(self, path: str) -> Any:
        async with self.session.get(self.base_url + path, headers=self._headers()) as response:
            await _raise_for(response)
            return orjson.loads(await response.read())

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in (await self._get("/v1/models"))["data"]]

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        payload = orjson.dumps(conversation.model_dump(mode="json"))
        data, _ = await self._post("/admin/conversations", payload, CallOptions())
        return Conversation.model_validate(data)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        try:
            return Conversation.model_validate(await self._get(f"/admin/conversations/{conversation_id}"))
        except errors.NotFoundError:
            return None

    async def fork_conversation(self, conversation_id: str, at_message: int) -> Conversation | None:
        payload = orjson.dumps({"at_message": at_message})
        try:
            data, _ = await self._post(f"/admin/conversations/{conversation_id}/fork", payload, CallOptions())
        except errors.NotFoundError:
            return None
        return Conversation.model_validate(data)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[ChatChunk]:
    """Decode the server's SSE; an error event raises, and an end without [DONE] is an interruption."""
    try:
        async for event in iter_sse(response.content.iter_any()):
            if event.data == "[DONE]":
                return
            data = event.json()
            if isinstance(data, dict) and data.get("error"):
                raise error_from_body(502, data)
            yield ChatChunk.model_validate(data)
        raise errors.StreamInterruptedError("the server closed the stream before it finished")
    except aiohttp.ClientPayloadError as exc:
        raise errors.StreamInterruptedError("the connection to the server broke mid-stream") from exc
    finally:
        response.release()
