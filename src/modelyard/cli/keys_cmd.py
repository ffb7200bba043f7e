"""``modelyard keys``: virtual API keys for the server (create shows the key once; only its hash is kept)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from modelyard.cli.options import parse_future, split_csv
from modelyard.cli.render import err, money, number, out, print_json, print_wide, when
from modelyard.cli.session import open_client
from modelyard.errors import NotFoundError
from modelyard.storage.base import VirtualKey

app = typer.Typer(help="Virtual API keys for the modelyard server.", no_args_is_help=True)

JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _public(key: VirtualKey) -> dict[str, Any]:
    """Everything about a key except its hash (the plaintext is never stored)."""
    return key.model_dump(mode="json", exclude={"key_hash"}) | {"active": key.is_active()}


@app.command("create")
def create_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A name to recognise the key by.")],
    models: Annotated[
        list[str] | None,
        typer.Option("--model", metavar="MODEL", help="Allowed model (repeat, or comma-separated); default: all."),
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", metavar="N", min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", metavar="N", min=1, help="Tokens per minute.")] = None,
    budget: Annotated[float | None, typer.Option("--budget", metavar="USD", min=0, help="Spend limit in USD.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", metavar="WHEN", help="30d, 12h, or an ISO date.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Create a key and print it: this is the only time the key itself is shown."""
    limits: dict[str, Any] = {"rpm": rpm, "tpm": tpm, "budget": budget, "expires_at": parse_future(expires)}
    with open_client(ctx) as client:
        saved, plaintext = client.admin.create_key(name, allowed_models=split_csv(models), created_by="cli", **limits)
    if json_out:
        print_json({**_public(saved), "key": plaintext})
        return
    err.print(f"created key {saved.id} ({saved.name}); copy it now, it is not shown again:")
    out.out(plaintext)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Keys with their limits and spend (never the key itself)."""
    with open_client(ctx) as client:
        keys = client.admin.keys(include_revoked=all_keys)
    if json_out:
        print_json([_public(k) for k in keys])
        return
    if not keys:
        err.print("no keys yet: modelyard keys create NAME")
        return
    table = Table(title="Virtual keys", title_justify="left")
    for column in ("id", "name", "prefix", "models", "rpm / tpm", "spent / budget", "expires", "state"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for key in keys:
        state = "revoked" if key.revoked_at else ("active" if key.is_active() else "expired")
        table.add_row(
            key.id,
            key.name,
            key.prefix + "…",
            ", ".join(key.allowed_models) or "all",
            f"{number(key.rpm)} / {number(key.tpm)}",
            f"{money(key.spent)} / {money(key.budget)}",
            when(key.expires_at),
            state,
        )
    print_wide(table)


@app.command("revoke")
def revoke_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (vk_…), as `keys list` shows it.")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with open_client(ctx) as client:
        revoked = client.admin.revoke_key(key_id)
    if not revoked:
        raise NotFoundError(f"no active key {key_id!r}: see `modelyard keys list --all`", param="key_id")
    err.print(f"revoked {key_id}")
