"""``modelyard db``: migrate the database and say where it stands."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from modelyard.cli.render import err, out, print_json
from modelyard.cli.session import open_client, require_local
from modelyard.config import load_settings

app = typer.Typer(help="The database: migrate it, see where it stands.", no_args_is_help=True)


def database_url() -> str:
    """The configured database URL (default: the SQLite file in the data folder), password hidden."""
    from modelyard.storage.engine import normalize_url

    url = normalize_url(load_settings().database_url)
    rendered: str = url.render_as_string(hide_password=True)
    return rendered


async def revisions(url: str | None) -> tuple[str | None, str | None]:
    """(current, head) revisions of the database at ``url``."""
    from modelyard.storage.migrate import current_revision, head_revision

    return await current_revision(url), head_revision()


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option("--revision", metavar="REV", help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database schema (safe to run again; it runs on first use too).

    Not through --server: a server migrates its own database when it starts."""
    from modelyard.storage.migrate import upgrade as run_upgrade

    require_local(ctx, "db upgrade", "run it on the server's host (a server also migrates its database on start)")
    settings = load_settings()
    with err.status("migrating the database…"):
        asyncio.run(run_upgrade(settings.database_url, revision))
        current, _ = asyncio.run(revisions(settings.database_url))
    err.print(f"database {database_url()} is at revision {current}")


@app.command("status")
def status(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The database URL, its revision and the newest one this version ships (a server's, with --server)."""
    with open_client(ctx) as client:
        found = client.admin.database()
    current, head = found.revision, found.head
    state: dict[str, Any] = found.model_dump()
    if json_out:
        print_json(state)
        return
    verdict = "up to date" if current == head else "behind: run `modelyard db upgrade`"
    out.print(f"database: {state['url']}\nrevision: {current or 'none'} (newest: {head}) — {verdict}")
