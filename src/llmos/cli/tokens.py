"""`llmos tokens create | ls | revoke`: API tokens for people and scripts (admins only)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json

app = typer.Typer(help="API tokens of the control plane (admins only).", no_args_is_help=True)


@app.command()
def create(
    role: Annotated[str, typer.Option(help="viewer (reads), developer (acts with its user's role in each project: "
                                           "submit, cancel own jobs, deploy) or admin (everything, every project)")],
    name: Annotated[str, typer.Option(help="who or what the token is for; also its owner unless --owner")],
    owner: Annotated[str | None, typer.Option(help="the user the token acts as (made on its first token, with a "
                                                   "project of its name)")] = None,
) -> None:
    """Make a token; it is printed once and only its hash is stored."""
    from llmos.control import Client

    with Client.local() as client:
        made = client.create_token(role, name, owner)
    console.print(f"{made['role']} token for {made['owner']} (shown once, keep it safe):")
    print(made["token"])
    console.print(f"next: export LLMOS_TOKEN={made['token']}   (the CLI then acts as {made['owner']})")
    console.print(f"      llmos projects add-member PROJECT {made['owner']} --role developer   (its own project: "
                  f"{made['owner']})")


@app.command("ls")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option("--all", help="also revoked tokens")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Tokens: id, name, owner, role, the token's first characters, when made and last used (never a secret)."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        rows = client.tokens(include_revoked)
    if json_out:
        print_json(rows)
        return
    columns = ["id", "name", "owner", "role", "prefix", "created", "last used"]
    columns += ["revoked"] if include_revoked else []
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for t in rows:
        cells = [str(t["id"]), escape(t["name"]), escape(t["owner"]), t["role"], f"{t['prefix'] or '-'}...",
                 _ago(t["created_s"]), _ago(t["last_used_s"], "never")]
        table.add_row(*cells, *([_ago(t["revoked_s"], "-")] if include_revoked else []))
    console.print(table)
    console.print("next: llmos tokens revoke ID   (or: llmos tokens create --role viewer --name NAME)")


app.command("list", hidden=True, help="old name of `llmos tokens ls`")(list_tokens)


@app.command()
def revoke(token_id: Annotated[int, typer.Argument(help="the token's id (llmos tokens ls)")]) -> None:
    """Revoke a token: every request with it answers 401 from now on. The last admin token cannot be revoked."""
    from llmos.control import Client

    with Client.local() as client:
        gone = client.revoke_token(token_id)
    console.print(f"revoked token {gone['id']} ({gone['role']} token {gone['name']} of {gone['owner']}, "
                  f"{gone['prefix'] or '?'}...); it is refused from now on")
    console.print("next: llmos tokens ls")


def _ago(at_s: float | None, none: str = "-") -> str:
    from llmos.cli.control import _age

    return f"{_age(at_s)} ago" if at_s else none
