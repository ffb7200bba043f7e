"""``modelyard keys``: virtual API keys for the server (create shows the key once; only its hash is kept)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from modelyard.cli.options import parse_future, split_csv
from modelyard.cli.render import err, money, number, out, print_json, print_wide, when
from modelyard.cli.session import open_client, run, stores
from modelyard.errors import NotFoundError
from modelyard.storage.base import VirtualKey, new_virtual_key

app = typer.Typer(help="Virtual API keys for the modelyard server.", no_args_is_help=True)

JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _public(key: VirtualKey) -> dict[str, Any]:
    """Everything about a key except its hash (the plaintext is never stored)."""
    return key.model_dump(mode="json", exclude={"key_hash"}) | {"active": key.is_active()}


@app.command("create")
def create_key(
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
    fields: dict[str, Any] = {"allowed_models": split_csv(models), "rpm": rpm, "tpm": tpm, "budget": budget}
    fields["expires_at"] = parse_future(expires)
    with open_client() as client:
        key, plaintext = new_virtual_key(name, client.gateway.key_secret(), created_by="cli", **fields)
        saved: VirtualKey = run(client, stores(client).keys.create(key))
    if json_out:
        print_json({**_public(saved), "key": plaintext})
        return
    err.print(f"created key {saved.id} ({saved.name}); copy it now, it is not shown again:")
    out.out(plaintext)


@app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Keys with their limits and spend (never the key itself)."""
    with open_client() as client:
        keys: list[VirtualKey] = run(client, stores(client).keys.list(include_revoked=all_keys))
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
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (vk_…), as `keys list` shows it.")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with open_client() as client:
        revoked = run(client, stores(client).keys.revoke(key_id))
    if not revoked:
        raise NotFoundError(f"no active key {key_id!r}: see `modelyard keys list --all`", param="key_id")
    err.print(f"revoked {key_id}")
