"""`llmos tokens create --role viewer|developer|admin`: API tokens for people and scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from llmos.cli._render import console

app = typer.Typer(help="API tokens of the control plane (admins only).", no_args_is_help=True)


@app.command()
def create(
    role: Annotated[str, typer.Option(help="viewer (read), developer (submit, cancel own jobs) or admin")],
    name: Annotated[str, typer.Option(help="who or what the token is for; also its owner unless --owner")],
    owner: Annotated[str | None, typer.Option(help="the user the token acts as")] = None,
) -> None:
    """Make a token; it is printed once and only its hash is stored."""
    from llmos.control import Client

    with Client.local() as client:
        made = client.create_token(role, name, owner)
    console.print(f"{made['role']} token for {made['owner']} (shown once, keep it safe):")
    print(made["token"])
    console.print(f"next: export LLMOS_TOKEN={made['token']}   (the CLI then acts as {made['owner']})")
