"""`llmos spec validate FILE` and `llmos spec example KIND`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console

app = typer.Typer(help="Validate job specs and print commented examples.", no_args_is_help=True)


# What runs a valid spec of each kind.
_NEXT = {"train": "llmos train {file}", "compress": "llmos compress {file}", "serve": "llmos serve --spec {file}",
         "command": "llmos submit {file}", "pipeline": "llmos run {file}",
         "sweep": "llmos run {file}"}


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-5")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print only the resolved job as JSON")] = False,
) -> None:
    """Check a spec and print the resolved job; every problem is reported at once."""
    from llmos.spec import load_job

    job = load_job(file, overrides)
    kind = job.kind  # type: ignore[attr-defined]
    if json_out:
        typer.echo(job.model_dump_json(indent=2))
        return
    console.print(f"[green]ok[/] {file}: kind {kind}")
    console.print_json(job.model_dump_json())
    console.print("next: " + _NEXT.get(kind, "llmos submit {file}").format(file=file)
                  + (f"   (or queue it: llmos submit {file})"
                     if kind in ("train", "compress", "pipeline", "sweep") else ""))


@app.command()
def example(kind: Annotated[str, typer.Argument(
        help="job kind: train, compress, serve, command, pipeline or sweep")] = "train"
            ) -> None:
    """Print a commented example spec generated from the field descriptions."""
    from llmos.spec import example_yaml

    typer.echo(example_yaml(kind), nl=False)
