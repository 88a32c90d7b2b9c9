"""`llmos run FILE`: a spec in the foreground, without a control plane. A pipeline runs its stages here
one after another; a train or compress spec runs as `llmos train` / `llmos compress` would."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json


def register(app: typer.Typer) -> None:
    app.command()(run)


def run(
    file: Annotated[Path, typer.Argument(help="spec (YAML): kind pipeline, sweep, train or compress")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. name=nightly")] = None,
    max_retries: Annotated[int, typer.Option(min=0, help="runs again a stage that crashed (not one whose gate or "
                                                         "bounds failed) up to this many times")] = 0,
    json_out: JsonFlag = False,
) -> None:
    """Run a spec in the foreground: a pipeline's stages one after another (train, compress with its gate,
    evaluate, promote, deploy), each starting once the stages it needs have succeeded; a sweep's trials
    as subprocesses, max_parallel at a time."""
    from llmos.errors import RunFailed, SpecError
    from llmos.spec import load_job

    job = load_job(file, overrides)
    kind = job.kind  # type: ignore[attr-defined]
    if kind == "train":
        from llmos.cli.train import train

        train(file, overrides)
        return
    if kind == "compress":
        from llmos.cli.compress import compress

        compress(str(file), overrides)
        return
    if kind == "sweep":
        from llmos.cli._sweep import run_in_foreground

        run_in_foreground(job, file, json_out)
        return
    if kind != "pipeline":
        raise SpecError(f"llmos run does not run a kind: {kind} spec.",
                        hint=f"Run it with: llmos serve --spec {file}" if kind == "serve" else
                        f"Queue it on the control plane: llmos submit {file}")
    from llmos.pipeline import run_foreground

    with _stdout_to_stderr() if json_out else contextlib.nullcontext():  # stdout holds only the JSON
        result = run_foreground(job, max_retries=max_retries,  # type: ignore[arg-type]
                                note=lambda line: console.print(line, markup=False))
    if json_out:
        print_json(result)
    else:
        from llmos.cli.jobs import stage_graph

        console.print(stage_graph(result["name"], result["stages"]))
        console.print(f"stage folders: {result['folder']}")
    if result["state"] != "succeeded":
        failed = result["failed"][0] if result["failed"] else "?"
        why = next((s["reason"] for s in result["stages"] if s["name"] == failed), "")
        raise RunFailed(f"pipeline {result['name']} failed at stage {failed}: {why}",
                        hint=f"Fix the cause and run it again: llmos run {file}")
    if not json_out:
        console.print(f"next: llmos models ls   (or queue it on the control plane: llmos submit {file})")


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout meanwhile — by this process and the training workers it starts,
    which inherit the descriptor — goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
