"""Mask secrets (and optionally PII) before anything is stored or printed.

Provider key patterns, bearer tokens, ``sk-…`` keys, AWS keys and PEM private keys are always masked;
emails, phone numbers and user patterns are masked when configured. Applied to messages, responses,
headers and error text by the logging middleware, and to the process log by ``RedactingFilter``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # every pattern below needs at least this many characters

SECRET_PATTERNS: dict[str, str] = {
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    "anthropic_key": r"\bsk-ant-[A-Za-z0-9_\-]{16,}",
    "openai_key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",
    "modelyard_key": r"\bsk-my-[A-Za-z0-9_\-]{16,}",
    "google_key": r"\bAIza[0-9A-Za-z_\-]{30,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "aws_secret": r"(?i)aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+=]{40}",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    "bearer": r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{8,}=*",
    "key_param": r"(?i)\b(?:api[_-]?key|access[_-]?token|secret|password)\b(\"?\s*[=:]\s*\"?)[^\s\"'&,}]{8,}",
    "url_key": r"(?i)([?&](?:key|api_key|token)=)[^&\s\"']+",
}

OPTIONAL_PATTERNS: dict[str, str] = {
    "email": r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
    "phone": r"(?<![\w/])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.\-]\d{3,4}[\s.\-]\d{3,4}(?![\w/])",
}

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"})


class Redactor:
    """Masks secrets in text and in JSON-like data (dict keys are kept, values are masked)."""

    def __init__(self, extra_patterns: Iterable[str] = (), pii: Iterable[str] = ()) -> None:
        sources = list(SECRET_PATTERNS.values())
        sources += [OPTIONAL_PATTERNS[name] for name in pii]
        sources += list(extra_patterns)
        self._patterns = [re.compile(p) for p in sources]

    def text(self, value: str) -> str:
        if len(value) < MIN_SECRET_LENGTH:  # roles, finish reasons, short words: nothing to mask
            return value
        for pattern in self._patterns:
            value = pattern.sub(_replacement, value)
        return value

    def data(self, value: Any) -> Any:
        """A redacted copy of ``value`` (str, list, dict, or anything else unchanged)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {k: self._field(k, v) for k, v in value.items()}
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: MASK if k.lower() in SECRET_HEADERS else self.text(v) for k, v in headers.items()}

    def _field(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _is_secret_name(key) and isinstance(value, str) and value:
            return MASK
        return self.data(value)


def _is_secret_name(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return lowered in {"api_key", "apikey", "authorization", "x_api_key", "password", "secret", "access_token"}


def _replacement(match: re.Match[str]) -> str:
    # Keep the "key=" / "?key=" prefix a pattern captured, mask the secret itself.
    if match.re.groups and match.group(1):
        prefix = match.group(0)[: match.end(1) - match.start(0)]
        return prefix + MASK
    return MASK


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record that passes through a handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        return True
