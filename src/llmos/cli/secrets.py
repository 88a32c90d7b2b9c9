"""`llmos secrets set | ls | rm`: a project's secrets, for specs to use as `${secret:NAME}` in env."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json

app = typer.Typer(help="Secrets of a project: set by its developers, given to its jobs' environment only.",
                  no_args_is_help=True)

Project = Annotated[str | None, typer.Option(help="the project; unset: your default project")]


@app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="letters, digits and _, e.g. HF_TOKEN")],
    project: Project = None,
    from_file: Annotated[Path | None, typer.Option(help="read the value from this file (one trailing newline "
                                                        "is dropped)")] = None,
) -> None:
    """Set or replace a secret: from --from-file, piped stdin or a hidden prompt (never an argument).

    Never from the command line, where shell history and `ps` would keep it."""
    from llmos.control import Client

    value = _value(from_file)
    with Client.local() as client:
        made = client.set_secret(project or "-", name, value)
    verb = "set" if made["created"] else "replaced"
    console.print(f"{verb} secret {made['name']} of project {made['project']}")
    console.print(f"next: use it in a spec as  env: {{{name}: \"${{secret:{name}}}\"}}")


@app.command("ls")
def list_secrets(project: Project = None, json_out: JsonFlag = False) -> None:
    """The project's secrets: names and when they were set (never a value)."""
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        rows = client.secrets(project or "-")
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in ("project", "name", "set", "by"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["project"], r["name"], _ago(r["updated_s"]), r["updated_by"])
    console.print(table)
    console.print("next: llmos secrets set NAME < value-file")


@app.command("rm")
def remove(name: Annotated[str, typer.Argument(help="the secret's name")], project: Project = None) -> None:
    """Remove a secret; jobs that reference it and have not started fail at their start, naming it."""
    from llmos.control import Client

    with Client.local() as client:
        gone = client.remove_secret(project or "-", name)
    console.print(f"removed secret {gone['name']} of project {gone['project']}")
    console.print("next: llmos secrets ls")


def _value(from_file: Path | None) -> str:
    from llmos.errors import LlmosError

    if from_file is not None:
        try:
            text = from_file.read_text()
        except OSError as exc:
            raise LlmosError(f"cannot read {from_file}: {exc.strerror}.",
                             hint="Check the path given to --from-file.") from None
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = typer.prompt("value", hide_input=True, confirmation_prompt=True)
    text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise LlmosError("the secret's value is empty.", hint="Pipe it in: llmos secrets set NAME < file")
    return text


def _ago(at_s: float | None) -> str:
    from llmos.cli.control import _age

    return f"{_age(at_s)} ago" if at_s else "-"
