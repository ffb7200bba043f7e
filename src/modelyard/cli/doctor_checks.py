"""The checks behind ``modelyard doctor``: each says what it found and, when something is wrong, how to fix it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from modelyard.config import Settings, load_settings
from modelyard.errors import ConfigError, ModelyardError

State = Literal["ok", "warn", "fail", "info"]

#: How long an endpoint may take to answer ``GET {base_url}/models``.
ENDPOINT_TIMEOUT = 3.0
DEFAULT_LOCAL_MODEL = "local/smollm2"
OPENAI_KIND = "openai_compat"


@dataclass(frozen=True)
class Endpoint:
    """A provider's listing URL to probe, with the key presented the way its adapter presents it."""

    name: str
    url: str
    headers: dict[str, str]
    checks_key: bool = True


@dataclass
class Check:
    name: str
    state: State
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_config() -> tuple[Check, Settings | None]:
    """The settings load (env vars + modelyard.yaml) and the file has no unknown keys."""
    try:
        settings = load_settings()
    except Exception as exc:  # a YAML syntax error is not a ConfigError: report it all the same
        fix = "correct the file (or unset MODELYARD_CONFIG to use another)"
        return Check("config file", "fail", " ".join(str(exc).split())[:300], fix), None
    if settings.config_file is None:
        return Check("config file", "ok", "no modelyard.yaml: using defaults and MODELYARD_* variables"), settings
    unknown = _unknown_keys(Path(settings.config_file))
    if unknown:
        detail = f"{settings.config_file}: unknown keys {', '.join(unknown)} (ignored)"
        return Check("config file", "warn", detail, "remove or rename them (see docs/configuration)"), settings
    return Check("config file", "ok", f"read {settings.config_file}"), settings


def _unknown_keys(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return sorted(str(k) for k in data if k not in Settings.model_fields) if isinstance(data, dict) else []


def check_keys(gateway: Any) -> list[Check]:
    """Which provider keys are set (names only, never values), and whether the default model has one."""
    present, missing = [], []
    for spec in gateway.specs.values():
        if not spec.requires_key:
            continue
        try:
            gateway.api_key(spec)
            present.append(f"{spec.name} ({spec.api_key_env or 'in config'})")
        except ConfigError:
            missing.append(f"{spec.name} ({spec.api_key_env})" if spec.api_key_env else spec.name)
    checks = [Check("provider keys", "ok" if present else "info", "set: " + (", ".join(present) or "none"))]
    if missing:
        checks.append(Check("missing keys", "info", ", ".join(missing), "export NAME_API_KEY=… to use one"))
    checks.append(_default_model(gateway))
    return checks


def _default_model(gateway: Any) -> Check:
    model = gateway.settings.default_model
    try:
        target = gateway.router.resolve(model)
        provider = target.partition("/")[0]
        spec = gateway.specs.get(provider)
        if spec is None:
            raise ConfigError(f"unknown provider {provider!r}")
        gateway.api_key(spec)
    except ModelyardError as exc:
        return Check("default model", "fail", f"{model}: {exc.message}", "set the key, or default_model in the config")
    return Check("default model", "ok", model)


def endpoints_to_check(gateway: Any) -> list[Endpoint]:
    """Configured custom base URLs, and public providers whose key is set."""
    found = []
    for name, spec in gateway.specs.items():
        configured = gateway.settings.providers.get(name)
        custom = configured is not None and configured.base_url is not None
        try:
            key = gateway.api_key(spec)
        except ConfigError:
            key = None
        if not spec.base_url or not (custom or (spec.requires_key and key)):
            continue
        bearer = spec.kind == OPENAI_KIND  # other adapters present keys their own way: check reachability only
        headers = {"Authorization": f"Bearer {key}"} if bearer and key else {}
        found.append(Endpoint(name, spec.base_url.rstrip("/") + "/models", headers, checks_key=bearer))
    return found


async def check_endpoints(targets: list[Endpoint]) -> list[Check]:
    """``GET {base_url}/models`` on each, concurrently, with a short timeout."""
    if not targets:
        return [Check("endpoints", "info", "none to check: no custom base_url and no public provider key")]
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=ENDPOINT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(_probe(session, target) for target in targets)))


async def _probe(session: Any, target: Endpoint) -> Check:
    name, url, label = target.name, target.url, f"endpoint {target.name}"
    try:
        async with session.get(url, headers=target.headers, allow_redirects=False) as response:
            status = response.status
    except TimeoutError:
        return Check(label, "fail", f"{url}: no answer in {ENDPOINT_TIMEOUT:g} s", "is the server up? check base_url")
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return Check(label, "fail", f"{url}: {reason}", f"is the server running? check providers.{name}.base_url")
    if status < 300 or (not target.checks_key and status < 500):
        return Check(label, "ok", f"{url} answered {status}" + ("" if target.checks_key else " (key not checked)"))
    if status in (401, 403):
        return Check(label, "fail", f"{url} refused the key ({status})", f"check the API key for {name}")
    if status >= 500:
        return Check(label, "fail", f"{url} answered {status}", "the service has a problem: try again later")
    return Check(label, "warn", f"{url} answered {status}", "reachable, but check base_url (it should end in /v1)")


async def check_database(settings: Settings) -> Check:
    """The database answers and its schema is at the newest revision."""
    from modelyard.storage.engine import normalize_url
    from modelyard.storage.migrate import current_revision, head_revision

    try:
        url = normalize_url(settings.database_url)
        shown = url.render_as_string(hide_password=True)
        current, head = await current_revision(url), head_revision()
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        return Check("database", "fail", detail, "check database_url / MODELYARD_DATABASE_URL and that it is up")
    if current == head:
        return Check("database", "ok", f"{shown} at revision {current}")
    if current is None:
        return Check("database", "warn", f"{shown} has no tables yet", "run `modelyard db upgrade` (or first use)")
    return Check("database", "warn", f"{shown} at {current}, newest is {head}", "run `modelyard db upgrade`")


def local_model_name(settings: Settings) -> str:
    default = settings.default_model
    return default if default.startswith("local/") else DEFAULT_LOCAL_MODEL


def check_local_found(gateway: Any, model: str, needed: bool) -> Check:
    """The local engine is installed and knows the model."""
    bad: State = "fail" if needed else "warn"
    try:
        available: list[str] = gateway.provider("local").available_models()
    except ModelyardError as exc:
        return Check("local model", bad, exc.message, "pip install 'modelyard[local]'")
    name = model.partition("/")[2]
    if name not in available and not Path(name).is_absolute():
        found = ", ".join(available) or "none"
        return Check("local model", bad, f"{model} not found (available: {found})", "pip install 'modelyard[local]'")
    return Check("local model", "ok", f"{model} found")
