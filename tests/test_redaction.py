"""Redaction: what is masked, and that the needle shortcut masks exactly what running every pattern would."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from modelyard.redaction import (
    _ASCII_FOLD,
    MASK,
    OPTIONAL_NEEDLES,
    OPTIONAL_PATTERNS,
    SECRET_NEEDLES,
    SECRET_PATTERNS,
    Redactor,
    _replacement,
)

SECRETS = {
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    "anthropic_key": "sk-ant-api03-abcdefghijklmnopqrstuv",
    "openai_key": "sk-proj-abcdefghijklmnopqrstuv",
    "modelyard_key": "sk-my-abcdefghijklmnopqrstuv",
    "google_key": "AIzaSyA1234567890abcdefghijklmnopqrs",
    "aws_access_key": "AKIAABCDEFGHIJKLMNOP",
    "aws_secret": "AWS_SECRET_ACCESS_KEY=" + "a" * 40,
    "github_token": "ghp_" + "a" * 36,
    "slack_token": "xoxb-1234567890-abcdef",
    "bearer": "Authorization: Bearer abc.def.ghi",
    "key_param": 'api_key="abcdefgh12345"',
    "url_key": "https://x.test/v1?key=abc123&q=1",
}


def reference(value: str, patterns: list[str]) -> str:
    """What redaction did before the needle shortcut: every pattern, in order, on every string of 8+ characters."""
    if len(value) < 8:
        return value
    for pattern in patterns:
        value = re.sub(pattern, _replacement, value)
    return value


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_kind_is_masked(name: str) -> None:
    text = f"before {SECRETS[name]} after"
    redacted = Redactor().text(text)
    assert MASK in redacted and redacted.startswith("before ")
    assert redacted == reference(text, list(SECRET_PATTERNS.values()))


def test_prefixes_are_kept_and_plain_text_is_untouched() -> None:
    redactor = Redactor()
    assert redactor.text("password: hunter2hunter2") == "password: " + MASK
    assert redactor.text("GET /v1?token=abcdef&x=1") == "GET /v1?token=" + MASK + "&x=1"
    plain = "Please say hello to the benchmark harness in one short friendly sentence."
    assert redactor.text(plain) is plain


def test_data_masks_values_and_secret_named_fields() -> None:
    redactor = Redactor()
    data: Any = {
        "role": "user",
        "content": [{"type": "text", "text": "use sk-my-abcdefghijklmnopqrstuv"}],
        "api-key": "short",
        "Authorization": "x",
        "password": "",
        "n": 3,
        "t": ("sk-abcdefghijklmnopqrstuv",),
    }
    assert redactor.data(data) == {
        "role": "user",
        "content": [{"type": "text", "text": "use " + MASK}],
        "api-key": MASK,
        "Authorization": MASK,
        "password": "",
        "n": 3,
        "t": [MASK],
    }


def test_every_pattern_has_needles_and_a_mask_adds_none() -> None:
    assert SECRET_NEEDLES.keys() == SECRET_PATTERNS.keys()
    assert OPTIONAL_NEEDLES.keys() == OPTIONAL_PATTERNS.keys()
    for needles in (*SECRET_NEEDLES.values(), *OPTIONAL_NEEDLES.values()):
        for needle in needles:
            assert needle == needle.lower() and needle.isascii()
            assert needle not in MASK.lower() and "[" not in needle and "]" not in needle


def test_the_fold_table_is_every_non_ascii_letter_re_matches_to_ascii_when_ignoring_case() -> None:
    ascii_letter = re.compile("(?i)[a-z]")
    found = {chr(c) for c in range(0x80, 0x110000) if ascii_letter.match(chr(c))}
    assert found == {chr(c) for c in _ASCII_FOLD}


TRICKY = [
    "ap\u0130_key=abcdefgh12345",
    "ap\u0131_key=abcdefgh12345",
    "\u017fecret: abcdefgh12345",
    "api_\u212aey=abcdefgh12345",
    "BEARER    abcdefgh.ijk==",
    "tokens: sk-abc sk-ant-ABCDEFGHIJKLMNOPQR and Bearer sk-proj-abcdefghijklmnopqrstuv",
    "task-specific risk-free desk-bound",
    "sk-my-sk-ant-abcdefghijklmnopqrstuvwxyz",
    "x?KEY=1&Token=2&api_key=3",
    "aws_secret_access_key: " + "A" * 40 + " and AKIAABCDEFGHIJKLMNOP!",
    "mail ann@example.com or +1 415-555-1234 now",
    "é" * 10 + "password=" + "ü" * 10,
]
FRAGMENTS = [
    *SECRETS.values(),
    *(needle for needles in SECRET_NEEDLES.values() for needle in needles),
    "\u0130", "\u0131", "\u017f", "\u212a", "K", "S", "I", "=", ":", '"', "?", "&", " ", "\n", "-", "_", "é",
    "abcdefghij", "ABCDEFGHIJKLMNOP", "0123456789", "@example.com", "ann", "415-555-1234", MASK,
]  # fmt: skip


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))


@pytest.mark.parametrize(
    ("extra", "pii"), [((), ()), ((), ("email", "phone")), ((r"EMP-[0-9]{6}", r"(?i)(secret_id=)\w+"), ("email",))]
)
def test_the_shortcut_masks_exactly_what_every_pattern_would(extra: tuple[str, ...], pii: tuple[str, ...]) -> None:
    redactor = Redactor(extra, pii)
    patterns = [*SECRET_PATTERNS.values(), *(OPTIONAL_PATTERNS[name] for name in pii), *extra]
    rng = random.Random(20261121)
    texts = TRICKY + [f"x {secret} y" for secret in SECRETS.values()] + [_random_text(rng) for _ in range(5000)]
    texts += ["EMP-123456 and secret_id=abc", "Secret_ID=abcdefgh"]
    for _ in range(2):  # the second pass meets the strings remembered as clean
        for text in texts:
            assert redactor.text(text) == reference(text, patterns), text


def test_only_clean_strings_are_remembered() -> None:
    redactor = Redactor()
    secret = "sk-my-abcdefghijklmnopqrstuv"
    assert [redactor.text(secret), redactor.text(secret)] == [MASK, MASK]
    assert [redactor.text("chat.completion"), redactor.text("chat.completion")] == ["chat.completion"] * 2
    assert secret not in redactor._clean and "chat.completion" in redactor._clean


def _random_data(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return _random_text(rng)
    if kind == 1:
        return rng.choice([None, 3, 2.5, True])
    if kind == 2:
        return rng.choice([*SECRETS.values(), "plain words", "x"])
    if kind == 3:
        return [_random_data(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    names = ["content", "role", "API-Key", "password", "x_api_key", "note", "Authorization", "access-token", 7]
    return {rng.choice(names): _random_data(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_data_masks_exactly_what_looking_at_every_string_would() -> None:
    """``data`` first looks at the whole JSON text once; it must mask what the string-by-string walk masks."""
    redactor, walker = Redactor(), Redactor()
    rng = random.Random(1121)
    for _ in range(3000):
        value = _random_data(rng)
        assert redactor.data(value) == walker._walk(value), value


def test_clean_data_is_returned_as_it_is_and_odd_values_are_still_walked() -> None:
    redactor = Redactor()
    clean = {"messages": [{"role": "user", "content": "hello there, how are you"}], "n": 1}
    assert redactor.data(clean) is clean
    odd = {"when": object(), "key": "sk-my-abcdefghijklmnopqrstuv"}  # not JSON: the walk handles it
    assert redactor.data(odd)["key"] == MASK
    assert redactor.data({"Api-Key": "not-a-pattern-but-a-secret-name"}) == {"Api-Key": MASK}


def test_data_each_masks_each_part_as_data_would_and_returns_clean_parts_as_they_are() -> None:
    redactor, walker = Redactor(), Redactor()
    rng = random.Random(2611)
    for _ in range(1000):
        parts = tuple(_random_data(rng) for _ in range(rng.randint(1, 6)))
        assert redactor.data_each(parts) == tuple(walker._walk(p) for p in parts), parts
    clean = ([{"role": "user", "content": "hello there"}], {"temperature": 0.2}, None)
    assert redactor.data_each(clean) is clean
    messages, params = redactor.data_each(([{"content": "use sk-my-abcdefghijklmnopqrstuv"}], {"seed": 1}))
    assert messages == [{"content": f"use {MASK}"}] and params == {"seed": 1}
