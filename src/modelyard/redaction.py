"""Mask secrets (and optionally PII) before anything is stored or printed.

Provider key patterns, bearer tokens, ``sk-…`` keys, AWS keys and PEM private keys are always masked;
emails, phone numbers and user patterns are masked when configured. Applied to messages, responses,
headers and error text by the logging middleware, and to the process log by ``RedactingFilter``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # every pattern below needs at least this many characters
#: Short strings found clean are remembered (roles, object types, model names recur in every row), up to this many.
CLEAN_MEMO_SIZE = 4096
CLEAN_MEMO_MAX_LENGTH = 64

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

#: For each pattern, lower-case text that every match of it contains (one of them, after ``_fold``): a pattern
#: only runs on text that has one. Empty: it always runs. A new pattern needs its entry here.
SECRET_NEEDLES: dict[str, tuple[str, ...]] = {
    "private_key": ("-----begin",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "modelyard_key": ("sk-my-",),
    "google_key": ("aiza",),
    "aws_access_key": ("akia", "asia"),
    "aws_secret": ("aws_secret_access_key",),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "slack_token": ("xox",),
    "bearer": ("bearer",),
    "key_param": ("apikey", "api_key", "api-key", "accesstoken", "access_token", "access-token", "secret", "password"),
    "url_key": ("key=", "token="),
}
OPTIONAL_NEEDLES: dict[str, tuple[str, ...]] = {"email": ("@",), "phone": ()}

#: The non-ASCII characters that ``re`` matches to an ASCII letter when ignoring case (a test checks the list).
_ASCII_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"})


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    needles: tuple[str, ...]

    def may_match(self, folded: str) -> bool:
        """Whether the pattern can match the text ``folded`` came from (``False`` only when it cannot)."""
        return not self.needles or _contains_any(folded, self.needles)


class Redactor:
    """Masks secrets in text and in JSON-like data (dict keys are kept, values are masked)."""

    def __init__(self, extra_patterns: Iterable[str] = (), pii: Iterable[str] = ()) -> None:
        rules = [_Rule(re.compile(p), SECRET_NEEDLES[name]) for name, p in SECRET_PATTERNS.items()]
        rules += [_Rule(re.compile(OPTIONAL_PATTERNS[name]), OPTIONAL_NEEDLES[name]) for name in pii]
        rules += [_Rule(re.compile(p), ()) for p in extra_patterns]
        self._rules = tuple(rules)
        # Every needle once, when every rule has needles: text with none of them is returned as it is.
        gated = all(rule.needles for rule in rules)
        self._needles = _fewest(n for rule in rules for n in rule.needles) if gated else None
        # What data with nothing to mask never contains: no needle, and no secret field name.
        self._data_needles = _fewest([*self._needles, *_SECRET_NAME_NEEDLES]) if self._needles is not None else None
        self._clean: set[str] = set()  # only strings with nothing to mask: no secret is ever kept here

    def text(self, value: str) -> str:
        if len(value) < MIN_SECRET_LENGTH:  # roles, finish reasons, short words: nothing to mask
            return value
        memo = len(value) <= CLEAN_MEMO_MAX_LENGTH
        if memo and value in self._clean:
            return value
        redacted = self._redact(value)
        if memo and redacted == value:
            if len(self._clean) >= CLEAN_MEMO_SIZE:
                self._clean.clear()
            self._clean.add(value)
        return redacted

    def _redact(self, value: str) -> str:
        # The patterns run in order, each on the previous one's output; a mask never adds a needle, so the
        # needles found in the original text are enough to know which patterns can match.
        folded = _fold(value)
        if self._needles is not None and not _contains_any(folded, self._needles):
            return value
        for rule in self._rules:
            if rule.may_match(folded):
                value = rule.pattern.sub(_replacement, value)
        return value

    def data(self, value: Any) -> Any:
        """``value`` redacted (str, list, dict, or anything else unchanged): a copy where something was masked,
        ``value`` itself where nothing can be."""
        if isinstance(value, dict | list | tuple) and self._surely_clean(value):
            return value
        return self._walk(value)

    def data_each(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """Each of ``values`` redacted as by ``data``, with one look at all of them when none holds a secret."""
        if self._surely_clean(values):
            return values
        return tuple(self._walk(value) for value in values)

    def _surely_clean(self, value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
        """Whether no needle (and no secret field name) occurs anywhere in ``value``: one look at its JSON text
        instead of one per string. Needles have no character that JSON escapes, so none can hide there."""
        if self._data_needles is None:
            return False
        try:
            dumped = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # not JSON data: look string by string
            return False
        return not _contains_any(_fold(dumped), self._data_needles)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._field(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(v) for v in value]
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: MASK if k.lower() in SECRET_HEADERS else self.text(v) for k, v in headers.items()}

    def _field(self, key: Any, value: Any) -> Any:
        if not isinstance(value, str):
            return self._walk(value)
        if value and isinstance(key, str) and _is_secret_name(key):
            return MASK
        return self.text(value)


def _contains_any(text: str, needles: tuple[str, ...]) -> bool:
    for needle in needles:  # noqa: SIM110 - a plain loop: any() over a generator costs ~2x here, per string
        if needle in text:
            return True
    return False


def _fewest(needles: Iterable[str]) -> tuple[str, ...]:
    """The needles that say as much about "contains any of them": each once, none that contains another."""
    unique = set(needles)
    return tuple(sorted(n for n in unique if not any(other != n and other in n for other in unique)))


def _fold(value: str) -> str:
    """Lower-case text in which every case-insensitive match of an ASCII needle is a plain substring."""
    return value.lower() if value.isascii() else value.translate(_ASCII_FOLD).lower()


_SECRET_NAMES = frozenset({"api_key", "apikey", "authorization", "x_api_key", "password", "secret", "access_token"})
#: Text that a secret field name's JSON key contains, however its separators are written (``-`` or ``_``).
_SECRET_NAME_NEEDLES = tuple(sorted({n for name in _SECRET_NAMES for n in (name, name.replace("_", "-"))}))


def _is_secret_name(key: str) -> bool:
    return key.lower().replace("-", "_") in _SECRET_NAMES


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
