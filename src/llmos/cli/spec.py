"""`llmos spec validate FILE` and `llmos spec example KIND`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console

app = typer.Typer(help="Validate job specs and print commented examples.", no_args_is_help=True)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-5")] = None,
) -> None:
    """Check a spec and print the resolved job; every problem is reported at once."""
    from llmos.spec import load_job

    job = load_job(file, overrides)
    console.print(f"[green]ok[/] {file}: kind {job.kind}")  # type: ignore[attr-defined]
    console.print_json(job.model_dump_json())
    console.print(f"next: llmos {job.kind} {file}")  # type: ignore[attr-defined]


@app.command()
def example(kind: Annotated[str, typer.Argument(help="job kind, e.g. train")] = "train") -> None:
    """Print a commented example spec generated from the field descriptions."""
    from llmos.spec import example_yaml

    typer.echo(example_yaml(kind), nl=False)
