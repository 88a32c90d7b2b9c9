"""`llmos roots add | ls | rm`: folders a project's spec paths may name beside its own (admins add)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json

app = typer.Typer(help="Folders a project's specs may name (data, outputs, models) beside LLMOS_HOME/projects/"
                       "PROJECT; admins add and remove them.", no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="the project")]


@app.command("add")
def add(project: ProjectArg, path: Annotated[str, typer.Argument(help="an absolute folder")]) -> None:
    """Let the project's specs name paths under PATH (symlinks in it are followed to where they point)."""
    from llmos.control import Client

    with Client.local() as client:
        row = client.add_root(project, path)
    console.print(f"project {row['project']} may now use {row['path']}")
    console.print(f"next: llmos roots ls {project}")


@app.command("ls")
def list_roots(project: ProjectArg, json_out: JsonFlag = False) -> None:
    """Every folder the project's spec paths may be under: its own folders, then the added ones."""
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        rows = client.roots(project)
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in ("path", "from"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["path"], "default" if r["default"] else f"added by {r['added_by']}")
    console.print(table)
    console.print(f"also: the run folders llmos made for the project's jobs. next: llmos roots add {project} PATH")


@app.command("rm")
def remove(project: ProjectArg, path: Annotated[str, typer.Argument(help="an added folder")]) -> None:
    """Take an added folder back; jobs already queued keep the paths they were submitted with."""
    from llmos.control import Client

    with Client.local() as client:
        row = client.remove_root(project, path)
    console.print(f"project {row['project']} may no longer use {row['path']}")
    console.print(f"next: llmos roots ls {project}")
