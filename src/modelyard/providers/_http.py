"""The shared upstream HTTP client: one aiohttp session per Gateway, no redirects, explicit timeouts."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from modelyard import errors
from modelyard.config import HttpSettings
from modelyard.providers.base import Timeouts
from modelyard.retry import parse_retry_after, parse_should_retry
from modelyard.watchdog import Watchdog

MAX_ERROR_TEXT = 2000

ErrorParser = Callable[[int, Any], tuple[type[errors.ModelyardError] | None, str | None, str | None]]
"""(status, parsed body) -> (error class or None for the status default, message, code)."""


class HttpClient:
    """Owns the aiohttp session; created lazily inside the running loop, closed by the Gateway."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.settings.ca_bundle:
            return ssl.create_default_context(cafile=self.settings.ca_bundle)
        return True

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.settings.pool_size,
                limit_per_host=self.settings.pool_size_per_host,
                ssl=self._ssl(),
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    def timeouts(self) -> Timeouts:
        s = self.settings
        return Timeouts(connect=s.connect_timeout, read=s.read_timeout, write=s.write_timeout, pool=s.pool_timeout)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts,
        provider: str,
        model: str | None,
        parse_error: ErrorParser | None = None,
        stream: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request; non-2xx answers raise the translated error; transport faults raise typed errors.

        ``stream`` is for ``stream()``, whose ``StreamBody`` applies the read timeout itself."""
        timeout = aiohttp.ClientTimeout(
            total=timeouts.total,
            connect=timeouts.pool,
            sock_connect=timeouts.connect,
            # aiohttp re-arms a timer on every network read for this: a stream's reads share one instead.
            sock_read=None if stream else timeouts.read,
        )
        data = orjson.dumps(json) if json is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with self.session.request(
                method,
                url,
                data=data,
                headers=all_headers,
                timeout=timeout,
                allow_redirects=False,
                proxy=self.settings.proxy,
            ) as response:
                if response.status >= 300:
                    raise await translate_error(response, provider, model, parse_error)
                yield response
        except errors.ModelyardError:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise errors.TimeoutError(
                f"upstream timed out ({type(exc).__name__})", provider=provider, model=model
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise errors.StreamInterruptedError(
                "upstream closed the connection before the response was complete", provider=provider, model=model
            ) from exc
        except aiohttp.ClientError as exc:
            raise errors.ConnectionError(
                f"could not reach {provider}: {type(exc).__name__}", provider=provider, model=model
            ) from exc

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts,
        provider: str,
        model: str | None,
        parse_error: ErrorParser | None = None,
    ) -> AsyncIterator[StreamBody]:
        """``request`` for a streamed answer: its body as it arrives, with ``timeouts.read`` between reads."""
        async with self.request(
            method,
            url,
            json=json,
            headers=headers,
            timeouts=timeouts,
            provider=provider,
            model=model,
            parse_error=parse_error,
            stream=True,
        ) as response:
            body = StreamBody(response, timeouts.read)
            try:
                yield body
            finally:
                body.close()

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None,
        timeouts: Timeouts,
        provider: str,
        model: str | None,
        parse_error: ErrorParser | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """POST JSON, return (parsed body, headers)."""
        async with self.request(
            "POST",
            url,
            json=body,
            headers=headers,
            timeouts=timeouts,
            provider=provider,
            model=model,
            parse_error=parse_error,
        ) as response:
            raw = await response.read()
            try:
                return orjson.loads(raw), response.headers
            except orjson.JSONDecodeError as exc:
                raise errors.ProviderError(
                    f"upstream sent invalid JSON: {raw[:200]!r}", provider=provider, model=model
                ) from exc


class StreamBody:
    """A streamed body as it arrives (from ``HttpClient.stream``). ``TimeoutError`` when no bytes come for
    ``read_timeout`` seconds: what aiohttp's ``sock_read`` does, with one timer for all the reads instead of one each;
    raised inside the request's block, which turns it into the typed upstream timeout."""

    def __init__(self, response: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._content = response.content
        self._read_timeout = read_timeout
        self._watchdog = Watchdog()

    def close(self) -> None:
        self._watchdog.close()

    def __aiter__(self) -> StreamBody:
        return self

    async def __anext__(self) -> bytes:
        data = await self._watchdog.wait(self._content.readany(), self._read_timeout)
        if not data:
            raise StopAsyncIteration
        return data


async def translate_error(
    response: aiohttp.ClientResponse, provider: str, model: str | None, parse_error: ErrorParser | None
) -> errors.ModelyardError:
    """Turn a non-2xx upstream answer into one typed error, by status and error code."""
    raw = await response.read()
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw[:MAX_ERROR_TEXT].decode("utf-8", errors="replace")
    cls: type[errors.ModelyardError] | None = None
    message: str | None = None
    code: str | None = None
    if parse_error is not None:
        cls, message, code = parse_error(response.status, body)
    cls = cls or errors.error_class_for_status(response.status)
    if cls is errors.AuthenticationError or cls is errors.PermissionDeniedError:
        # Our key was refused upstream: that is a gateway configuration problem, not the caller's 401.
        message = f"{provider} rejected the configured API key ({response.status}): {message or ''}".strip()
    if message is None:
        detail = body if isinstance(body, str) else orjson.dumps(body).decode() if body else ""
        message = f"upstream answered HTTP {response.status}: {detail}".rstrip(": ")
    return cls(
        message[:MAX_ERROR_TEXT],
        status=response.status,
        provider=provider,
        model=model,
        request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
        retry_after=parse_retry_after(response.headers),
        code=code,
        should_retry=parse_should_retry(response.headers),
        body=body,
    )
