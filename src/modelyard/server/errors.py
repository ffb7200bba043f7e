"""The one place that turns an error into the OpenAI error envelope and its HTTP status and headers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from modelyard import errors

MAX_MESSAGE = 2000


def error_status_and_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, OpenAI envelope, extra headers) for any exception."""
    if not isinstance(exc, errors.ModelyardError):
        return 500, _envelope("internal server error", "server_error", None, None), {"x-should-retry": "false"}
    status, kind, code = exc.status_code, exc.openai_type, exc.code
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError) and exc.provider is not None:
        # Our own provider key was refused upstream: the caller's key is fine, so never answer their 401/403.
        status, kind, code = 502, "upstream_error", "upstream_authentication_failed"
    elif isinstance(exc, errors.ConfigError):
        status = 500 if exc.provider is None else 503
    elif status < 400 or status > 599:
        status = 502
    headers = {}
    if not _client_retry_can_help(exc):
        headers["x-should-retry"] = "false"
    if exc.retry_after is not None and 0 < exc.retry_after <= 60:
        headers["retry-after"] = str(max(1, round(exc.retry_after)))
    if exc.request_id:
        headers["x-request-id"] = exc.request_id
    message = exc.message[:MAX_MESSAGE]
    return status, _envelope(message, kind, exc.param, code), headers


def _client_retry_can_help(exc: errors.ModelyardError) -> bool:
    """Whether the caller's SDK should retry: never when we already retried upstream, or for permanent errors."""
    if exc.should_retry is False or isinstance(exc, errors.BudgetExceededError):
        return False
    if exc.upstream_attempts > 0:
        return False
    return exc.is_retryable


def _envelope(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(exc: BaseException, request_id: str | None = None) -> Response:
    status, body, headers = error_status_and_body(exc)
    if request_id and "x-request-id" not in headers:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_event(exc: BaseException) -> bytes:
    """A mid-stream failure as the OpenAI SDK expects it: ``data: {"error": {...}}`` (then the stream closes)."""
    _, body, _ = error_status_and_body(exc)
    return b"data: " + orjson.dumps(body) + b"\n\n"
