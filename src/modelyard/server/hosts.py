"""Which ``Host`` headers the server answers: without a master key, loopback names only (DNS-rebinding defence).

Without a master key the server has no auth, which is safe only because it listens on loopback. A web page can
still reach it through DNS rebinding: its own name, re-pointed at 127.0.0.1, makes the browser send the page's
requests here with ``Host: attacker.example`` and lets the page read the answers (same origin, so CORS never
applies). Those requests are refused unless the host is a loopback name or address, or listed in
``server.allowed_hosts``. With a master key, only a non-empty ``server.allowed_hosts`` is enforced.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard import errors
from modelyard.server.errors import error_response

#: Allowed ``Host`` values remembered by a ``HostAllowList``; refused ones never are.
MEMO_SIZE = 64


def _host_header(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"host":
            return value
    return None


def host_name(header: str) -> str:
    """The name or address of a ``Host`` header, without port, brackets, trailing dot or case."""
    value = header.strip().lower()
    if value.startswith("["):  # [v6]:port
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """``localhost``, ``*.localhost`` (RFC 6761: never resolved through DNS) or a loopback address.

    Unlike ``server.run.is_loopback`` this never resolves the name: under rebinding the attacker's DNS answers."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostAllowList:
    """Answers whether a request's ``Host`` may be served; patterns are ``fnmatch`` globs (``*`` allows any)."""

    def __init__(self, allowed: Sequence[str], loopback: bool) -> None:
        self._patterns = tuple(pattern.lower().rstrip(".") for pattern in allowed)
        self._loopback = loopback  # loopback names are allowed too (the no-master-key mode)
        self._allowed: set[bytes] = set()  # raw headers found allowed (one or two names, sent with every request)

    @property
    def active(self) -> bool:
        return self._loopback or bool(self._patterns)

    def refusal(self, host: str) -> str:
        """Why ``host`` is refused, and what to change."""
        if self._loopback:
            return (
                f"Host {host!r} is not served here: without a master key this server answers only loopback names "
                "(localhost, 127.0.0.1, [::1]); add the name to server.allowed_hosts, or set a master key"
            )
        return f"Host {host!r} is not in server.allowed_hosts"

    def allows_raw(self, header: bytes) -> bool:
        """``allows`` for the header as it came; allowed values are remembered (at most ``MEMO_SIZE``)."""
        if header in self._allowed:
            return True
        if not self.allows(header.decode("latin-1")):
            return False
        if len(self._allowed) >= MEMO_SIZE:
            self._allowed.clear()
        self._allowed.add(header)
        return True

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if self._loopback and is_loopback_name(name):
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._patterns)


class HostCheckMiddleware:
    """ASGI middleware: 403 (OpenAI error shape) for a request whose ``Host`` the allow-list refuses."""

    def __init__(self, app: ASGIApp, hosts: HostAllowList) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = _host_header(scope["headers"])
            # No Host at all is not a browser (every browser sends one), so not a rebinding page.
            if header is not None and not self.hosts.allows_raw(header):
                host = header.decode("latin-1")
                error = errors.PermissionDeniedError(self.hosts.refusal(host), code="host_not_allowed")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
