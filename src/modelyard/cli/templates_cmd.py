"""``modelyard templates``: list, show and create prompt templates."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from modelyard.cli.options import parse_key_values, parse_text_values
from modelyard.cli.render import err, out, print_json
from modelyard.cli.session import open_client

app = typer.Typer(help="Prompt templates: list, show and create them.", no_args_is_help=True)


def _summary(template: Any) -> dict[str, Any]:
    return {
        "name": template.name,
        "origin": template.origin,
        "description": template.description,
        "variables": template.variables(),
        "model": template.model,
    }


@app.command("list")
def list_templates(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every template by name, with where it comes from and the variables it takes."""
    with open_client(ctx) as client:
        templates = client.admin.templates()
    if json_out:
        print_json([_summary(t) for t in templates])
        return
    table = Table(title="Templates", title_justify="left")
    for name in ("name", "origin", "variables", "description"):
        table.add_column(name, no_wrap=name == "name")
    for template in templates:
        table.add_row(template.name, template.origin, ", ".join(template.variables()), template.description)
    out.print(table)


@app.command("show")
def show_template(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The template's name.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """A template's YAML (system prompt, prompt, defaults, suggested model and params)."""
    with open_client(ctx) as client:
        template = client.admin.template(name)
    if json_out:
        print_json({**template.model_dump(mode="json"), "variables": template.variables()})
        return
    err.print(f"# {template.name} ({template.origin}); variables: {', '.join(template.variables()) or 'none'}")
    out.print(Syntax(template.to_yaml(), "yaml", theme="ansi_dark", background_color="default"))


def _interactive() -> bool:
    """Ask for the parts of a template (stdin is a terminal) rather than read the prompt from stdin."""
    return sys.stdin.isatty()


@app.command("new")
def new_template(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name (letters, digits, . _ -); also the file name.")],
    prompt: Annotated[
        str | None,
        typer.Option("-p", "--prompt", metavar="TEXT", help="User prompt with {{variables}}; asked for when missing."),
    ] = None,
    system: Annotated[str | None, typer.Option("-s", "--system", metavar="TEXT", help="System prompt.")] = None,
    description: Annotated[
        str | None, typer.Option("-d", "--description", metavar="TEXT", help="One line about it.")
    ] = None,
    model: Annotated[str | None, typer.Option("-m", "--model", metavar="MODEL", help="Suggested model.")] = None,
    default: Annotated[
        list[str] | None, typer.Option("--default", metavar="KEY=VALUE", help="Variable default key=value.")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("-o", "--option", metavar="KEY=VALUE", help="Model parameter key=value.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing template of this name.")] = False,
) -> None:
    """Create a template in your config folder (with --server: the server's database), from options or prompts.

    {{input}} is filled by piped stdin or the prompt text; when a template does not use it, it is appended.
    """
    if prompt is None:
        if not _interactive():
            prompt = sys.stdin.read().strip()
        else:
            description = description if description is not None else typer.prompt("Description", default="")
            system = system if system is not None else typer.prompt("System prompt", default="") or None
            prompt = typer.prompt("Prompt (use {{input}} and {{variables}})", default="{{ input }}")
    content: dict[str, Any] = {
        "description": description or "",
        "system": system,
        "prompt": prompt,
        "defaults": parse_text_values(default or []),
        "model": model,
        "params": parse_key_values(option or []),
    }
    from modelyard.templates import template_from_content

    template = template_from_content(content, name=name, origin="user")
    with open_client(ctx) as client:
        where = client.admin.save_template(template, overwrite=force)
    err.print(f"saved template {name!r} to {where}; variables: {', '.join(template.variables()) or 'none'}")
