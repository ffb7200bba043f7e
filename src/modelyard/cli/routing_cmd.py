"""``modelyard routing``: deployment health (circuit breakers), model groups and rollouts; change a rollout."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from modelyard.cli.render import err, out, print_json
from modelyard.cli.session import open_client

app = typer.Typer(help="Routing state: deployments, breakers, rollouts.", no_args_is_help=True)


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the raw state as JSON.")] = False,
) -> None:
    """Each deployment's breaker state, in-flight calls and latency; rollouts; where shared state lives."""
    with open_client(ctx) as client:
        state = client.admin.routing()
    if json_out:
        print_json(state)
        return
    out.print(_deployments(state.get("deployments") or {}))
    rollouts = state.get("rollouts") or {}
    for name, rollout in rollouts.items():
        share, configured = rollout["percent"], rollout["configured_percent"]
        out.print(f"rollout {name}: {share:g}% to {rollout['model']} (configured {configured:g}%)")
    shared = state.get("shared_state") or {}
    out.print(f"shared state: {shared.get('backend', 'memory')} ({shared.get('state', 'ok')})")


def _deployments(deployments: dict[str, Any]) -> Table | str:
    if not deployments:
        return "no deployment has served a call yet in this process"
    table = Table("deployment", "state", "in flight", "latency ms", "failures in a row", "back in s")
    for ident, info in sorted(deployments.items()):
        latency = info.get("latency_ms")
        table.add_row(
            ident,
            str(info.get("state", "")),
            str(info.get("in_flight", 0)),
            f"{latency:.1f}" if isinstance(latency, int | float) else "-",
            str(info.get("consecutive_failures", 0)),
            f"{info['available_in_s']:g}" if info.get("available_in_s") else "-",
        )
    return table


@app.command("rollout")
def rollout(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A rollout from settings.rollouts.")],
    percent: Annotated[float | None, typer.Argument(metavar="PERCENT", help="Share of traffic, 0 to 100.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Go back to the configured percentage.")] = False,
) -> None:
    """Change a rollout's share of traffic at run time, on every replica sharing Redis (no restart)."""
    if percent is None and not clear:
        raise typer.BadParameter("give a PERCENT, or --clear", param_hint="PERCENT")
    with open_client(ctx) as client:
        shared = client.admin.routing().get("shared_state") or {}
        if not client.remote and shared.get("backend") != "redis":
            raise typer.BadParameter(
                "a run-time rollout change needs a running server (--server URL) or shared state (redis_url); "
                "without either, change rollouts in modelyard.yaml",
                param_hint="NAME",
            )
        effective = client.admin.set_rollout(name, None if clear else percent)
    err.print(f"rollout {name}: now {effective:g}%")
