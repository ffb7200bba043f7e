#!/usr/bin/env python
"""Generate docs/configuration.md from the ``Settings`` model; with --check, fail when the page is stale.

Every setting is listed with its ``modelyard.yaml`` key, its ``MODELYARD_*`` environment variable (nested
with ``__``), its type, default and description. Descriptions come from the model's ``Field(description=...)``;
fields that have none yet are described in ``DESCRIPTIONS`` below (the model's own description wins). The
script, and so the test in ``tests/docs``, fails when a setting has no description anywhere, or when
``DESCRIPTIONS`` names a setting that no longer exists.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from modelyard.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
ENV_PREFIX = "MODELYARD_"

#: Descriptions of settings whose model field has none (yet). Keyed by ``Model.field``.
DESCRIPTIONS: dict[str, str] = {
    "Settings.default_model": "model used when a call names none (`modelyard prompt`, `Client.chat(messages=...)`)",
    "Settings.default_embedding_model": "model used by `embed` when the call names none",
    "Settings.aliases": "short names for models: `fast: openai/gpt-4o-mini` (an alias may name another alias)",
    "Settings.default_fallbacks": "fallbacks for every model that has no entry in `fallbacks`",
    "Settings.providers": (
        "provider rows: override a preset (`openai`, `groq`…) or add an OpenAI-compatible service by name"
    ),
    "Settings.breaker": "per-deployment circuit breaker",
    "Settings.limits": "rate limits and budgets",
    "Settings.cache": "exact-match response cache",
    "Settings.shared": "how replicas share limits through Redis",
    "Settings.max_retries": "retries per deployment after the first attempt (per call: `max_retries=`)",
    "Settings.max_retry_after": "longest `Retry-After` honoured, in seconds; a longer one means no retry at all",
    "Settings.strict_params": (
        "reject (400 `unsupported_parameter`) a parameter the model does not take, instead of dropping it"
    ),
    "Settings.http": "upstream HTTP client (one shared aiohttp session per Gateway)",
    "Settings.local": "the embedded llama.cpp engine",
    "Settings.server": "the HTTP server's address and limits",
    "Settings.app_name": "sent to OpenRouter as `X-Title` (a preset header)",
    "Settings.app_url": "sent to OpenRouter as `HTTP-Referer` (a preset header)",
    "Settings.log_requests": "write one request-log row per call (off: no logging middleware at all)",
    "Settings.store_bodies": "keep messages and responses (redacted) in the log rows; off: metadata only",
    "Settings.config_file": "the YAML file these settings were read from (set by modelyard; read-only in practice)",
    "ProviderSettings.kind": (
        "adapter: `openai_compat` (default for new rows), `anthropic`, `gemini`, `local`, `fake` or a plugin's kind"
    ),
    "ProviderSettings.base_url": "the service's base URL (OpenAI-compatible rows: the part before `/chat/completions`)",
    "ProviderSettings.api_key": "the key itself (prefer `api_key_env`; keys in files end up in backups)",
    "ProviderSettings.api_key_env": "environment variable that holds the key",
    "ProviderSettings.headers": "extra headers sent on every request; `{app_name}` and `{app_url}` are filled in",
    "ProviderSettings.models": "model names to list in `modelyard models` and `/v1/models`",
    "ProviderSettings.rules": "per-model quirks; yours are applied before the preset's",
    "ProviderSettings.options": (
        "adapter options: Anthropic `anthropic_version`, `default_max_tokens`; Gemini `thinking_budgets`, "
        "`thought_signature_fallback`"
    ),
    "ModelRule.system_suffix": "text appended to the system prompt (a system message is added when there is none)",
    "ModelRule.no_stream": "the model cannot stream: modelyard calls it without streaming and replays the answer",
    "ModelRule.no_tools": "the model cannot call tools: a request with `tools` fails with 400 `unsupported_operation`",
    "ModelGroupSettings.strategy": (
        "order in which deployments are tried: `priority`, `weighted`, `least_busy`, `latency` or `cost`"
    ),
    "ModelGroupSettings.deployments": "where the name is served from (at least one)",
    "DeploymentSettings.api_key": "this deployment's own key",
    "DeploymentSettings.api_key_env": "environment variable with this deployment's own key",
    "DeploymentSettings.headers": "extra headers for this deployment",
    "DeploymentSettings.rpm": "requests per minute for this deployment",
    "DeploymentSettings.tpm": "tokens per minute for this deployment",
    "DeploymentSettings.max_parallel": "requests in flight at once to this deployment",
    "RolloutSettings.model": "the model (or group) that receives the rollout's share",
    "RolloutSettings.percent": "share of traffic, 0-100; changeable at run time (`PUT /admin/rollouts/{name}`)",
    "RolloutSettings.sticky": "what keeps a caller on one side: the end `user`, the API `key`, or nothing (`request`)",
    "RouteSettings.model": "where matching requests go",
    "BreakerSettings.max_ejection_seconds": "longest ejection (and longest 429 cool-down)",
    "RateLimitSettings.rpm": "requests per minute (token bucket refilled continuously)",
    "RateLimitSettings.rps": "requests per second (token bucket)",
    "RateLimitSettings.burst": "bucket size for `rpm`/`rps`; default: one full window (`rpm` or `rps`)",
    "RateLimitSettings.tpm": "tokens per minute, estimated before the call and reconciled with real usage after",
    "RateLimitSettings.max_parallel": "requests in flight at once",
    "BudgetSettings.period": "`daily` and `monthly` reset at 00:00 UTC; `total` never resets",
    "LimitsSettings.tag_budgets": "by tag (sent as `tags`), or `*` for every tag",
    "CacheSettings.enabled": "turn the cache on",
    "CacheSettings.backend": "`memory` (per process, LRU), `sqlite` (a file) or `redis` (shared; needs `redis_url`)",
    "CacheSettings.ttl": "seconds an entry lives (per request: `ttl=` in the cache control)",
    "SharedStateSettings.prefix": "prefix of every Redis key modelyard writes",
    "HttpSettings.pool_size": "connections open at once across all upstreams",
    "HttpSettings.pool_size_per_host": "connections per upstream host (0: no per-host cap)",
    "HttpSettings.proxy": "HTTP(S) proxy for upstream calls (`HTTP_PROXY` and friends are not read)",
    "HttpSettings.ca_bundle": "PEM file of CA certificates to trust instead of the system's",
    "HttpSettings.connect_timeout": "seconds to open a TCP/TLS connection",
    "HttpSettings.read_timeout": "seconds of silence allowed while reading a response (each read)",
    "HttpSettings.write_timeout": "not applied: aiohttp has no write timeout (the call's deadline covers writes)",
    "HttpSettings.pool_timeout": "seconds to wait for a free connection from the pool",
    "LocalSettings.models_dir": "folder of `.gguf` files served as `local/<file name>`",
    "LocalSettings.n_ctx": "context window the local engine allocates, in tokens",
    "LocalSettings.n_threads": "CPU threads for generation (default: llama.cpp's choice)",
    "LocalSettings.embedding_model": "local model used for embeddings when the request names none",
    "ServerSettings.host": "address `modelyard serve` binds (anything but loopback needs `master_key`)",
    "ServerSettings.port": "port `modelyard serve` listens on",
    "ServerSettings.max_body_bytes": "largest request body; larger ones get 413 `request_too_large`",
}

#: Settings whose values are data tables rather than one value: documented with their item model.
SECTION_INTROS: dict[str, str] = {
    "Settings": "Top-level settings.",
    "ProviderSettings": (
        "One row under `providers.<name>`. A name that matches a preset (see [Providers](providers/index.md)) "
        "overrides that preset's fields; any other name adds an OpenAI-compatible service."
    ),
    "ModelRule": (
        "A per-model quirk, under `providers.<name>.rules` or `model_groups.<name>.deployments[].rules`. "
        "A rule with no `match` applies to every model of the row."
    ),
    "ModelGroupSettings": "One entry under `model_groups.<name>`: a model name served by several deployments.",
    "DeploymentSettings": "One item of `model_groups.<name>.deployments`.",
    "RolloutSettings": "One entry under `rollouts.<name>`: `<name>` is the model or alias being rolled out from.",
    "RouteSettings": "One item of `routes` (the first matching route wins).",
    "RateLimitSettings": "One entry under `limits.keys.<key>` or `limits.models.<pattern>`.",
    "BudgetSettings": "One entry under `limits.key_budgets.<key>` or `limits.tag_budgets.<tag>`.",
}


@dataclass
class Row:
    key: str
    env: str | None
    type: str
    default: str
    description: str


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models an annotation refers to (directly, or as list items / map values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def type_text(annotation: Any) -> str:
    """A readable type: words, no pipes (they would split the Markdown table)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        text = " or ".join(type_text(a) for a in real)
        return f"{text} (optional)" if len(real) < len(args) else text
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"map of {type_text(args[0])} to {type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is Any:
        return "any"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def constraints(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for cls, attr, sign in (
            (annotated_types.Ge, "ge", "≥"),
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "≤"),
        ):
            if isinstance(item, cls):
                words.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):
            words.append(f"at least {item.min_length} item")
    return f" ({', '.join(words)})" if words else ""


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    text = field.description or DESCRIPTIONS.get(f"{model.__name__}.{name}")
    if not text:
        raise SystemExit(f"{model.__name__}.{name} has no description: add Field(description=...) or DESCRIPTIONS")
    return text


def rows(model: type[BaseModel], prefix: str, env: str | None) -> list[Row]:
    """One row per field of ``model``; nested single models are flattened (``server.port``)."""
    out: list[Row] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        env_name = f"{env}{name.upper()}" if env is not None else None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and model is Settings:
            continue  # its own section
        out.append(
            Row(
                key=key,
                env=env_name,
                type=type_text(annotation) + constraints(field),
                default=default_text(field),
                description=description(model, name, field),
            )
        )
    return out


def table(items: list[Row], with_env: bool) -> str:
    head = "| Setting | Environment variable | Type | Default | Description |\n|---|---|---|---|---|\n"
    if not with_env:
        head = "| Field | Type | Default | Description |\n|---|---|---|---|\n"
    lines = []
    for r in items:
        cells = [f"`{r.key}`"]
        if with_env:
            cells.append(f"`{r.env}`" if r.env else "—")
        cells += [r.type, r.default, r.description.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


HEADER = """# Configuration reference

<!-- Generated by scripts/docs_config.py from modelyard.config.Settings: do not edit by hand.
     `python scripts/docs_config.py` rewrites it; `--check` (and tests/docs) fails when it is stale. -->

modelyard reads its settings once, when a `Gateway` (or `Client`, or `modelyard serve`) starts, from these
sources — the first one that sets a value wins:

1. keyword arguments: `Client(default_model="fake/echo")`, `load_settings(timeout=30)`;
2. environment variables `MODELYARD_*`, nested with `__` (`MODELYARD_SERVER__PORT=5000`); lists and maps are
   JSON (`MODELYARD_DEFAULT_FALLBACKS='["local/smollm2"]'`), and map entries can be set one by one
   (`MODELYARD_PROVIDERS__MYCO__BASE_URL=http://10.0.0.5:8000/v1` — names are lower-cased);
3. a YAML file: the path in `MODELYARD_CONFIG` (or `modelyard serve --config FILE`), else `./modelyard.yaml`,
   else `$XDG_CONFIG_HOME/modelyard/modelyard.yaml` (`~/.config/modelyard/modelyard.yaml`);
4. the defaults below.

Settings are immutable once built; an invalid value raises `ConfigError` (exit code 3 in the CLI) naming the
field. Provider API keys are not modelyard settings: each provider row names the environment variable its key
is read from (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`…, see [Providers](providers/index.md)).

A small `modelyard.yaml`:

```yaml
default_model: fast
aliases:
  fast: groq/llama-3.1-8b-instant
fallbacks:
  fast: [openai/gpt-4o-mini, local/smollm2]
providers:
  myco:                                  # any OpenAI-compatible service: one row
    base_url: http://10.0.0.5:8000/v1
    api_key_env: MYCO_API_KEY
server:
  port: 4000
cache:
  enabled: true
```

Data folders: the SQLite database, the virtual-key secret, spill files and the cache file live in
`$XDG_DATA_HOME/modelyard` (`~/.local/share/modelyard`); templates you add live in
`$XDG_CONFIG_HOME/modelyard`.
"""


def render() -> str:
    parts = [HEADER, "## Top-level settings\n\n", table(rows(Settings, "", ENV_PREFIX), True)]
    nested = [
        (name, field.annotation)
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]
    for name, model in nested:
        intro = model.__doc__.strip().splitlines()[0] if model.__doc__ else ""
        parts.append(f"\n## `{name}` {{#{_anchor(model)}}}\n\n{intro}\n\n")
        parts.append(table(rows(model, f"{name}.", f"{ENV_PREFIX}{name.upper()}__"), True))
    done = {Settings, *(m for _, m in nested)}
    queue = [m for owner in done for f in owner.model_fields.values() for m in _models_in(f.annotation)]
    order = list(SECTION_INTROS)
    queue = sorted(
        {m for m in queue if m not in done},
        key=lambda m: (order.index(m.__name__) if m.__name__ in order else len(order), m.__name__),
    )
    parts.append(
        "\n## Items of maps and lists\n\nThese are the entries of the map and list settings above. In YAML they "
        "nest under their parent key; from the environment, set the whole parent as JSON, or one map entry's field "
        "with `__` (`MODELYARD_LIMITS__KEYS__ALICE__RPM=60`).\n"
    )
    while queue:
        model = queue.pop(0)
        if model in done:
            continue
        done.add(model)
        intro = SECTION_INTROS.get(model.__name__) or (model.__doc__ or "").strip().splitlines()[0]
        parts.append(f"\n### {model.__name__} {{#{_anchor(model)}}}\n\n{intro}\n\n")
        parts.append(table(rows(model, "", None), False))
        queue += [m for f in model.model_fields.values() for m in _models_in(f.annotation) if m not in done]
    return "".join(parts)


def stale_descriptions() -> list[str]:
    """Entries of ``DESCRIPTIONS`` that name no field."""
    known: set[str] = set()
    queue: list[type[BaseModel]] = [Settings]
    seen: set[type[BaseModel]] = set()
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            known.add(f"{model.__name__}.{name}")
            queue += _models_in(field.annotation)
    return [k for k in DESCRIPTIONS if k not in known]


def main(argv: list[str]) -> int:
    text = render()
    stale = stale_descriptions()
    if stale:
        print(f"scripts/docs_config.py: DESCRIPTIONS names settings that need no entry: {stale}", file=sys.stderr)
        return 1
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale: run python scripts/docs_config.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
