"""Settings: env vars (``MODELYARD_*``, nested with ``__``) over ``modelyard.yaml`` over defaults.

Built once, immutable, passed to whoever needs it. Nothing here reads the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from modelyard.errors import ConfigError

CONFIG_ENV = "MODELYARD_CONFIG"


def config_dir() -> Path:
    """The user's modelyard config folder (``$XDG_CONFIG_HOME/modelyard``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelyard"


def data_dir() -> Path:
    """The user's modelyard data folder (``$XDG_DATA_HOME/modelyard``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "modelyard"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRule(_Frozen):
    """A per-model quirk, as data: which models it matches and what to change."""

    match: list[str] = Field(default_factory=list, description="fnmatch patterns on the upstream model name")
    drop: list[str] = Field(default_factory=list, description="parameters the model rejects")
    rename: dict[str, str] = Field(default_factory=dict, description="parameter renames, e.g. max_tokens")
    defaults: dict[str, Any] = Field(default_factory=dict, description="default params when unset")
    system_suffix: str | None = None
    no_stream: bool = False
    no_tools: bool = False


class ProviderSettings(_Frozen):
    """One provider row: a preset's overrides or a custom OpenAI-compatible service."""

    kind: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)
    rules: list[ModelRule] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class HttpSettings(_Frozen):
    """Upstream HTTP client settings (one shared aiohttp session per Gateway)."""

    pool_size: int = Field(default=100, ge=1)
    pool_size_per_host: int = Field(default=0, ge=0)
    proxy: str | None = None
    ca_bundle: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    write_timeout: float = Field(default=600.0, gt=0)
    pool_timeout: float = Field(default=30.0, gt=0)


class LocalSettings(_Frozen):
    """The embedded llama.cpp engine."""

    models_dir: str | None = None
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int | None = None
    models: dict[str, str] = Field(default_factory=dict, description="local name -> GGUF path")
    embedding_model: str = "smollm2"


class ServerSettings(_Frozen):
    """The HTTP server's limits (see docs/operations.md for the reasoning behind each default)."""

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    header_timeout: float = Field(default=10.0, gt=0, description="seconds to send the request headers")
    max_concurrency: int = Field(default=512, ge=1, description="in-flight requests before answering 503")
    first_token_timeout: float = Field(default=300.0, gt=0, description="seconds to the first streamed chunk")
    stream_idle_timeout: float = Field(default=300.0, gt=0, description="seconds between streamed chunks")
    drain_seconds: float = Field(default=30.0, ge=0, description="SIGTERM: time for in-flight requests")
    cors_origins: list[str] = Field(default_factory=list, description="CORS is off unless origins are listed")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names served (globs; '*' any). Without a master key, loopback names always are "
        "and nothing else unless listed (DNS-rebinding defence); with one, no check unless listed",
    )


Strategy = Literal["priority", "weighted", "least_busy", "latency", "cost"]


class DeploymentSettings(_Frozen):
    """One deployment of a model group: a provider row + upstream model, with its own key, URL, weight, limits."""

    id: str | None = Field(default=None, description="unique name; default: the model (numbered when repeated)")
    model: str = Field(description="'provider/upstream-model', e.g. openai/gpt-4o-mini")
    base_url: str | None = Field(default=None, description="overrides the provider row's base URL")
    api_key: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, ge=0, description="share of traffic for the weighted strategy")
    priority: int = Field(default=0, description="lower is tried first by the priority strategy")
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)
    rules: list[ModelRule] = Field(default_factory=list, description="per-deployment request adjustments")


class ModelGroupSettings(_Frozen):
    """A model name served by several deployments, picked by ``strategy``."""

    strategy: Strategy = "priority"
    deployments: list[DeploymentSettings] = Field(min_length=1)


class RolloutSettings(_Frozen):
    """Send ``percent`` of a name's traffic to ``model``, sticky per user (or key). Changeable at run time."""

    model: str
    percent: float = Field(default=0.0, ge=0, le=100)
    sticky: Literal["user", "key", "request"] = "user"


class RouteSettings(_Frozen):
    """A conditional route: requests for ``match`` whose fields equal ``when`` go to ``model``."""

    match: list[str] = Field(default_factory=lambda: ["*"], description="fnmatch patterns on the requested model")
    when: dict[str, Any] = Field(description="dotted path (metadata.team, user, key, tags) -> value or list")
    model: str


class BreakerSettings(_Frozen):
    """Per-deployment circuit breaker (Envoy outlier-detection numbers)."""

    failures: int = Field(default=5, ge=1, description="consecutive failures (5xx, timeouts, refused) to eject")
    ejection_seconds: float = Field(default=30.0, gt=0, description="first ejection; doubles on each repeat")
    max_ejection_seconds: float = Field(default=300.0, gt=0)
    latency_alpha: float = Field(default=0.2, gt=0, le=1, description="moving-average weight of a new sample")


class RateLimitSettings(_Frozen):
    """Token buckets and an in-flight cap. ``burst`` is the request bucket's size (default: one window)."""

    rpm: int | None = Field(default=None, ge=1)
    rps: float | None = Field(default=None, gt=0)
    burst: float | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)


class BudgetSettings(_Frozen):
    amount: float = Field(ge=0, description="USD")
    period: Literal["daily", "monthly", "total"] = "monthly"


class LimitsSettings(_Frozen):
    """Rate limits and budgets, enforced in-process or (with ``redis_url``) across every replica."""

    keys: dict[str, RateLimitSettings] = Field(
        default_factory=dict, description="by key id, key name, caller ('local', 'admin') or '*' for every caller"
    )
    models: dict[str, RateLimitSettings] = Field(default_factory=dict, description="fnmatch on the requested model")
    key_budgets: dict[str, BudgetSettings] = Field(default_factory=dict, description="by key id, name or '*'")
    tag_budgets: dict[str, BudgetSettings] = Field(default_factory=dict)
    output_estimate_tokens: int = Field(default=256, ge=0, description="completion tokens assumed before a call")
    lease_seconds: float = Field(default=90.0, gt=0, description="an in-flight slot of a dead replica frees after")


class SharedStateSettings(_Frozen):
    """How replicas share limits through Redis, and how they behave when it is unreachable."""

    prefix: str = "modelyard:"
    socket_timeout: float = Field(default=0.1, gt=0, description="seconds per Redis call before failing open")
    breaker_failures: int = Field(default=5, ge=1, description="Redis errors in a row before going local")
    breaker_seconds: float = Field(
        default=0.25, ge=0, description="...and for at least this long (a momentary stall is not an outage)"
    )
    retry_seconds: float = Field(default=1.0, gt=0, description="how often to probe Redis while it is down")
    replicas: int = Field(default=1, ge=1, description="replica count assumed before heartbeats are seen")
    max_connections: int = Field(default=64, ge=1, description="Redis connections per process")


class CacheSettings(_Frozen):
    """Exact-match response cache (off by default)."""

    enabled: bool = False
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    ttl: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, ge=1, description="memory backend: LRU bound")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="memory backend: LRU bound")
    path: str | None = Field(default=None, description="sqlite backend file; default: cache.db in the data folder")
    mode: Literal["deterministic", "all"] = Field(
        default="deterministic", description="deterministic: only temperature 0 or seeded requests"
    )


class Settings(BaseSettings):
    """Everything modelyard can be told. Immutable once built.

    Example (``MODELYARD_DEFAULT_MODEL=openai/gpt-4o-mini`` or ``default_model:`` in ``modelyard.yaml`` do the same)::

        settings = Settings(default_model="openai/gpt-4o-mini", aliases={"fast": "groq/llama-3.1-8b-instant"})
    """

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", env_nested_delimiter="__", frozen=True, extra="ignore")

    default_model: str = "local/smollm2"
    default_embedding_model: str = "local/smollm2"
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict, description="model -> ordered fallbacks")
    default_fallbacks: list[str] = Field(default_factory=list)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    model_groups: dict[str, ModelGroupSettings] = Field(
        default_factory=dict, description="model name -> deployments and a strategy"
    )
    rollouts: dict[str, RolloutSettings] = Field(default_factory=dict, description="name -> gradual rollout")
    routes: list[RouteSettings] = Field(default_factory=list, description="conditional routes, first match wins")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    redis_url: str | None = Field(default=None, description="share limits, budgets, cache and flags via Redis")
    shared: SharedStateSettings = Field(default_factory=SharedStateSettings)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout: float = Field(default=600.0, gt=0, description="overall deadline per call, retries included")
    max_retry_after: float = Field(default=60.0, ge=0)
    strict_params: bool = False
    http: HttpSettings = Field(default_factory=HttpSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    middleware: list[str] = Field(default_factory=list, description="'module:callable' factories")
    app_name: str = "modelyard"
    app_url: str = "https://github.com/modelyard/modelyard"
    prices: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="price/context-window overrides by provider/model (USD per 1M tokens)"
    )
    database_url: str | None = Field(default=None, description="default: SQLite file in the data folder")
    log_requests: bool = True
    store_bodies: bool = True
    log_file: str | None = Field(default=None, description="also append every request log row to this JSONL file")
    spill_dir: str | None = Field(default=None, description="where log rows wait while the database is down")
    redact_patterns: list[str] = Field(default_factory=list, description="extra regexes masked before storage")
    redact_pii: list[str] = Field(default_factory=list, description="built-in PII maskers to enable: email, phone")
    master_key: str | None = Field(default=None, description="admin key for the server; required off loopback")
    key_secret: str | None = Field(
        default=None, description="HMAC secret for virtual-key hashes; default: a random one kept in the data folder"
    )
    config_file: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        path = _config_path()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


class _EnvSource(EnvSettingsSource):
    """``MODELYARD_*`` variables, except that ``MODELYARD_SERVER`` holding a URL is the CLI's ``--server``, not
    the ``server`` settings (those come as JSON or as ``MODELYARD_SERVER__PORT`` and the like)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if field_name == "server" and isinstance(value, str) and not value.lstrip().startswith("{"):
            return None, key, is_complex
        return value, key, is_complex


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from {CONFIG_ENV}) does not exist")
        return path
    for candidate in (Path("modelyard.yaml"), config_dir() / "modelyard.yaml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from env, the YAML file and keyword overrides; bad values raise ``ConfigError``."""
    previous = os.environ.get(CONFIG_ENV)
    try:
        if config_file is not None:
            os.environ[CONFIG_ENV] = str(config_file)
        path = _config_path()
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous
    if path is not None and settings.config_file is None:
        settings = settings.model_copy(update={"config_file": str(path)})
    return settings
