"""`llmos train FILE [OVERRIDES]` and `llmos quickstart`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmos.cli._render import console


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(quickstart)


def train(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted overrides, e.g. train.lr=3e-5 resources.procs=2")] = None,
    fresh: Annotated[bool, typer.Option(help="start over even if the output folder holds a finished run "
                                             "(the old folder is kept beside it)")] = False,
) -> None:
    """Run a training job in the foreground; resumes if its output folder holds an unfinished run."""
    from llmos.spec import load_job

    job = load_job(file, overrides)
    if getattr(job, "data", None) is not None:
        from llmos.data import check_sources

        check_sources(job.data)  # seconds before the training process would find out
    _run(job, fresh=fresh, again=f"llmos train {file} {' '.join(overrides or [])}".strip())


def quickstart(
    model: Annotated[str, typer.Option(help="model preset, folder or hub id")] = "minilm-l6",
    epochs: Annotated[float, typer.Option(min=0.01, help="passes over the training data")] = 4,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after this many steps")] = None,
    procs: Annotated[int, typer.Option(min=1, help="DDP worker processes")] = 1,
) -> None:
    """Fine-tune MiniLM-L6 on the bundled support-intents data, track it in MLflow and register it
    as quickstart@candidate."""
    from llmos.quickstart import quickstart_job

    console.print("[bold]llmos quickstart[/]: fine-tuning MiniLM-L6 on support-intents "
                  "(8 intents, bundled with llmos)")
    # Always a new run: the quickstart's folder is scratch, its model lives in the registry.
    _run(quickstart_job(model=model, epochs=epochs, max_steps=max_steps, procs=procs), fresh=True,
         again="llmos quickstart", resumable=False)


def _run(job: Any, *, fresh: bool, again: str, resumable: bool = True) -> None:
    from rich.markup import escape

    from llmos.paths import tracking_uri
    from llmos.run import EXIT_PREEMPTED, launch

    result = launch(job, fresh=fresh)
    if result.exit_code == EXIT_PREEMPTED:
        then = "resumes from it" if resumable else "starts over"
        console.print(f"[yellow]stopped[/] with a checkpoint in {escape(str(result.run_dir))}.\n"
                      f"next: {escape(again)}  ({then})")
        raise typer.Exit(EXIT_PREEMPTED)
    summary = result.summary
    if result.exit_code != 0 or summary is None:
        console.print(f"[red]training failed[/] (exit code {result.exit_code}); its output is above.\n"
                      f"next: fix the cause and run `{escape(again)}` again"
                      + (" (it resumes from the last checkpoint)" if resumable else ""))
        raise typer.Exit(result.exit_code or 1)
    _print_summary(summary, result.run_dir, tracking_uri(job.tracking.uri))


def _print_summary(summary: dict[str, Any], run_dir: Path, uri: str) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in summary["metrics"].items():
        table.add_row(f"eval {key}", f"{value:.4f}")
    table.add_row("steps", str(summary["steps"]))
    table.add_row("wall time", f"{summary['wall_s']:.1f} s")
    table.add_row("run folder", str(run_dir))
    table.add_row("MLflow", f"{uri}  (run {summary['run_id'] or 'not tracked'})")
    reg = summary.get("registered")
    if reg:
        table.add_row("registered", f"{reg['name']} version {reg['version']}"
                                    + (f" @{reg['alias']}" if reg.get("alias") else ""))
    console.print("[green]done[/]")
    console.print(table)
    console.print("next:")
    if reg:
        ref = f"{reg['name']}@{reg['alias']}" if reg.get("alias") else f"{reg['name']}/{reg['version']}"
        console.print(f"  llmos models show {ref}")
    console.print(f"  mlflow ui --backend-store-uri {uri}")
    console.print("  llmos spec example train > job.yaml   # your own data and model")
