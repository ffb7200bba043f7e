"""``modelyard models``: what is available with the current keys, with context window, capabilities, price."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from modelyard.cli.render import err, number, print_json, print_wide
from modelyard.cli.session import open_client
from modelyard.errors import AuthenticationError, PermissionDeniedError
from modelyard.types.models import ModelInfo

if TYPE_CHECKING:
    from modelyard.sdk.sync import Client


def models(
    ctx: typer.Context,
    provider: Annotated[
        str | None, typer.Option("-p", "--provider", metavar="NAME", help="Only this provider's models.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the models as JSON.")] = False,
) -> None:
    """Models usable with the current keys: context window, price.

    Prices are USD per 1M input / output tokens."""
    with open_client(ctx) as client:
        listed = client.models()
        known = _providers(client, listed) if provider is not None else set()
    if provider is not None:
        if provider not in known:
            raise typer.BadParameter(f"unknown provider {provider!r}; known: {', '.join(sorted(known))}")
        listed = [m for m in listed if m.provider == provider or m.id.startswith(f"{provider}/")]
    if json_out:
        print_json([m.model_dump(mode="json", exclude_none=True) for m in listed])
        return
    if not listed:
        err.print("no models: set a provider key (see `modelyard doctor`) or list models in modelyard.yaml")
        return
    print_wide(_table(listed))


def _providers(client: Client, listed: list[ModelInfo]) -> set[str]:
    """The providers the gateway knows; for a server key without admin rights, those of the listed models."""
    try:
        return set(client.admin.info().providers)
    except (AuthenticationError, PermissionDeniedError):
        return {m.provider or m.id.partition("/")[0] for m in listed}


def _table(listed: list[ModelInfo]) -> Table:
    table = Table(title="Models", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("context", justify="right")
    table.add_column("max out", justify="right")
    table.add_column("capabilities")
    table.add_column("$ in / out", justify="right")
    for model in listed:
        price = f"{model.price.input:g} / {model.price.output:g}" if model.price is not None else "-"
        table.add_row(
            model.id,
            number(model.context_window),
            number(model.max_output_tokens),
            ", ".join(model.capabilities),
            price,
        )
    return table
