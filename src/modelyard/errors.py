"""One small error tree for every failure, whatever provider it came from.

Each error carries the HTTP status, provider, model, request id and retry-after, and says whether a retry
can help (``retryable``) and whether the router should try the next model (``fallback``). Foreign errors are
translated once, in the provider adapter, by status and error code — never by message text.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ModelyardError(Exception):
    """Base of every error modelyard raises."""

    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    fallback: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
        should_retry: bool | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status if status is not None else self.status
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.retry_after = retry_after
        self.code = code if code is not None else self.default_code
        self.param = param
        self.should_retry = should_retry  # an upstream's ``x-should-retry`` verdict, when it gave one
        self.body = body
        self.upstream_attempts = 0  # set by the gateway: how many upstream attempts were made before this

    @property
    def is_retryable(self) -> bool:
        """Whether another attempt may succeed: the upstream's verdict wins over the class default."""
        return self.should_retry if self.should_retry is not None else self.retryable

    def __str__(self) -> str:
        where = "/".join(x for x in (self.provider, self.model) if x)
        return f"{self.message} ({where})" if where else self.message


class ConfigError(ModelyardError):
    """Settings are missing or wrong (e.g. no API key); raised before any network call."""

    status = 500
    openai_type = "invalid_request_error"
    default_code = "config_error"


class BadRequestError(ModelyardError):
    """The request is invalid (400); ``param`` names the bad field."""

    status = 400
    openai_type = "invalid_request_error"


class UnsupportedParameterError(BadRequestError):
    """A parameter the chosen model cannot take, rejected in strict mode."""

    default_code = "unsupported_parameter"


class NotImplementedByModelyardError(ModelyardError):
    """The operation exists in the API but modelyard does not implement it (yet)."""

    status = 501
    openai_type = "invalid_request_error"
    default_code = "not_implemented"


class UnsupportedOperationError(BadRequestError):
    """The provider cannot do this operation (e.g. embeddings on a chat-only provider)."""

    default_code = "unsupported_operation"


class AuthenticationError(ModelyardError):
    """A key was missing or refused (401)."""

    status = 401
    openai_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(ModelyardError):
    """The key may not do this (403)."""

    status = 403
    openai_type = "permission_error"


class NotFoundError(ModelyardError):
    """The model, provider or resource does not exist (404)."""

    status = 404
    openai_type = "invalid_request_error"
    default_code = "model_not_found"


class ConflictError(ModelyardError):
    """The upstream reported a conflict (409); retryable."""

    status = 409
    openai_type = "invalid_request_error"
    retryable = True


class RequestTooLargeError(ModelyardError):
    """The request body is too large (413)."""

    status = 413
    openai_type = "invalid_request_error"
    default_code = "request_too_large"


class UnprocessableEntityError(ModelyardError):
    """The upstream could not process the request (422)."""

    status = 422
    openai_type = "invalid_request_error"


class ContextWindowExceededError(BadRequestError):
    """The request does not fit the model's context window."""

    default_code = "context_length_exceeded"
    fallback = True


class ContentPolicyError(BadRequestError):
    """The provider refused the content (safety block, moderation)."""

    default_code = "content_policy_violation"
    fallback = True


class RateLimitError(ModelyardError):
    """Rate limited (429); retryable after ``retry_after`` seconds, then falls back."""

    status = 429
    openai_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True
    fallback = True


class BudgetExceededError(ModelyardError):
    """A budget or quota is spent; retrying cannot help."""

    status = 429
    openai_type = "insufficient_quota"
    default_code = "insufficient_quota"


class TimeoutError(ModelyardError):
    """An upstream or the request deadline timed out."""

    status = 504
    openai_type = "timeout_error"
    default_code = "timeout"
    retryable = True
    fallback = True


class ConnectionError(ModelyardError):
    """The upstream could not be reached."""

    status = 502
    openai_type = "api_connection_error"
    default_code = "connection_error"
    retryable = True
    fallback = True


class ProviderError(ModelyardError):
    """The provider failed (5xx)."""

    status = 502
    openai_type = "server_error"
    retryable = True
    fallback = True


class ServiceUnavailableError(ProviderError):
    """The upstream is overloaded or down (503/529)."""

    status = 503
    openai_type = "service_unavailable_error"
    default_code = "service_unavailable"


class StreamInterruptedError(ProviderError):
    """A stream ended before it finished: never passed off as a complete answer, never retried."""

    default_code = "stream_interrupted"
    retryable = False
    fallback = False


class NoDeploymentAvailableError(ServiceUnavailableError):
    """Every candidate deployment is cooling down or ejected."""

    default_code = "no_deployment_available"
    retryable = False
    fallback = False


_BY_STATUS: dict[int, type[ModelyardError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TimeoutError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: TimeoutError,
    529: ServiceUnavailableError,
}


def error_class_for_status(status: int) -> type[ModelyardError]:
    """The error class for an upstream HTTP status (any other 5xx -> ProviderError)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ProviderError
    return BadRequestError


OPENAI_CODES: dict[str, type[ModelyardError]] = {
    "context_length_exceeded": ContextWindowExceededError,
    "string_above_max_length": ContextWindowExceededError,
    "content_policy_violation": ContentPolicyError,
    "content_filter": ContentPolicyError,
    "insufficient_quota": BudgetExceededError,
    "model_not_found": NotFoundError,
    "invalid_api_key": AuthenticationError,
    "stream_interrupted": StreamInterruptedError,
    "not_implemented": NotImplementedByModelyardError,
    "unsupported_parameter": UnsupportedParameterError,
    "timeout": TimeoutError,
}


def openai_error_parser(status: int, body: Any) -> tuple[type[ModelyardError] | None, str | None, str | None]:
    """Read the OpenAI error envelope ``{"error": {"message", "type", "code", "param"}}``.

    Returns (error class by code/type, or None for the status default; message; code).
    """
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, str):
        return None, err, None
    if not isinstance(err, dict):
        return None, None, None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    code = err.get("code") if isinstance(err.get("code"), str) else None
    kind = err.get("type") if isinstance(err.get("type"), str) else None
    cls = OPENAI_CODES.get(code or "") or OPENAI_CODES.get(kind or "")
    return cls, message, code


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "ConnectionError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "ModelyardError",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "NotImplementedByModelyardError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "StreamInterruptedError",
    "TimeoutError",
    "UnprocessableEntityError",
    "UnsupportedOperationError",
    "UnsupportedParameterError",
    "error_class_for_status",
    "openai_error_parser",
]
