"""``modelyard serve``: uvicorn (uvloop + httptools) over the app factory, refusing insecure exposure."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from modelyard.config import CONFIG_ENV, Settings, load_settings
from modelyard.errors import ConfigError
from modelyard.redaction import RedactingFilter, Redactor
from modelyard.server.app import create_app
from modelyard.server.protocol import HeaderTimeoutProtocol
from modelyard.storage.migrate import upgrade_in_child


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to loopback addresses."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


#: Seconds a thread may hold the GIL while another waits for it (CPython's default is 5 ms). The log writer's
#: database thread needs the GIL for a moment after each SQLite step; under load the event loop kept it waiting
#: the full 5 ms each time, so the writer fell behind and its queue grew by hundreds of rows a second (measured:
#: benchmarks/RESULTS.md). At 0.2 ms it keeps up, and the server used less CPU per request, not more.
GIL_SWITCH_INTERVAL = 0.0002


def tune_interpreter() -> None:
    """Settings of this server process's interpreter (the server owns its process; the SDK never does this)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def build_app() -> Starlette:
    """App factory for uvicorn workers (settings from env and the config file)."""
    tune_interpreter()
    return create_app(load_settings())


def configure_logging(settings: Settings, level: str) -> None:
    """Log to stderr through a filter that masks secrets in every record (ours, uvicorn's, libraries')."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(settings.redact_patterns, settings.redact_pii)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    """Run the server until SIGTERM/SIGINT; in-flight requests get ``server.drain_seconds`` to finish."""
    if not is_loopback(host) and not settings.master_key:
        raise ConfigError(
            f"refusing to listen on {host} without a master key: set MODELYARD_MASTER_KEY (or master_key in "
            "modelyard.yaml), or bind to 127.0.0.1"
        )
    if settings.config_file:
        os.environ[CONFIG_ENV] = settings.config_file
    os.environ["MODELYARD_SERVER__HEADER_TIMEOUT"] = str(settings.server.header_timeout)
    configure_logging(settings, log_level)
    tune_interpreter()
    HeaderTimeoutProtocol.header_timeout = settings.server.header_timeout
    # alembic would stay loaded for the server's life (~10 MB): the app's own migration then finds it done.
    upgrade_in_child(settings.database_url)
    # uvicorn drains, then re-raises the SIGTERM it caught; a drained shutdown is a clean exit (status 0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "modelyard.server.run:build_app" if workers > 1 else create_app(settings),
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=HeaderTimeoutProtocol,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=int(settings.server.drain_seconds),
        log_level=log_level,
        log_config=None,  # keep configure_logging's redacting handler
        access_log=False,
        server_header=False,
        # Nothing here reads the client address or scheme, so X-Forwarded-* is neither parsed nor trusted
        # (uvicorn's default trusts it from 127.0.0.1, where any local program can send it).
        proxy_headers=False,
        lifespan="on",
    )
