"""``modelyard doctor --server URL``: the server answers, takes the key, is ready, and lists models.

The local checks (config file, provider keys, endpoints, database, local model) are the server's business
there; what a client can check is what it needs from the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.cli.doctor_checks import Check
from modelyard.cli.session import API_KEY_ENV, SERVER_ENV, Connection, new_client
from modelyard.errors import AuthenticationError, ModelyardError, PermissionDeniedError

if TYPE_CHECKING:
    from modelyard.sdk.admin import ReadyReport
    from modelyard.sdk.sync import Client

KEY_FIX = f"pass the server's master key with --api-key or {API_KEY_ENV}"

#: /ready's checks, as doctor names them, with the fix for a failure.
READY_CHECKS = {
    "database": ("server database", "check the server's database_url and that the database is up"),
    "log_writer": ("server log writer", "the server spills logs to disk until its database answers again"),
    "default_model": ("server default model", "set the provider's key on the server, or its default_model"),
}


def remote_checks(connection: Connection) -> list[Check]:
    """Each check of a remote setup, stopping after the first when the server does not answer at all."""
    with new_client(connection) as client:
        reachable, report = _reach(client, connection)
        if report is None:
            return [reachable]
        return [reachable, _key(client), *_ready(report), _models(client)]


def _reach(client: Client, connection: Connection) -> tuple[Check, ReadyReport | None]:
    try:
        report = client.admin.ready()
    except ModelyardError as exc:
        fix = f"is the server running? check --server / {SERVER_ENV}"
        return Check("server", "fail", f"{connection.server}: {exc.message}", fix), None
    return Check("server", "ok", f"{connection.server} answered ({report.status})"), report


def _key(client: Client) -> Check:
    try:
        info = client.admin.info()
    except AuthenticationError as exc:
        return Check("server key", "fail", f"refused: {exc.message}", KEY_FIX)
    except PermissionDeniedError:
        detail = "accepted without admin rights: prompt, chat, compare and models work"
        return Check("server key", "warn", detail, f"logs, cost, keys and templates need the master key: {KEY_FIX}")
    return Check("server key", "ok", f"accepted with admin rights (modelyard {info.version})")


def _ready(report: ReadyReport) -> list[Check]:
    found = []
    for name, (label, fix) in READY_CHECKS.items():
        value = report.checks.get(name)
        if value is None:
            continue
        if value == "ok":
            found.append(Check(label, "ok", "ok"))
        else:
            found.append(Check(label, "warn" if name == "log_writer" else "fail", str(value), fix))
    return found


def _models(client: Client) -> Check:
    try:
        listed = client.models()
    except ModelyardError as exc:
        fix = KEY_FIX if isinstance(exc, AuthenticationError | PermissionDeniedError) else ""
        return Check("models", "fail", exc.message, fix)
    return Check("models", "ok" if listed else "warn", f"{len(listed)} models available")
