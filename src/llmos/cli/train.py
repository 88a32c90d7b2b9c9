"""`llmos train FILE [OVERRIDES]` and `llmos quickstart`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmos.cli._render import console

if TYPE_CHECKING:
    from llmos.api import TrainResult


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(quickstart)


def train(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted overrides, e.g. train.lr=3e-5 resources.procs=2")] = None,
    fresh: Annotated[bool, typer.Option(help="start over even if the output folder holds a finished run "
                                             "(the old folder is kept beside it)")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON at the end")] = False,
) -> None:
    """Run a training job in the foreground; resumes if its output folder holds an unfinished run."""
    from llmos.api import train_job

    job = train_job(file, list(overrides or []))
    _run(job, fresh=fresh, again=f"llmos train {file} {' '.join(overrides or [])}".strip(), json_out=json_out)


def quickstart(
    model: Annotated[str | None, typer.Option(help="model preset, folder or hub id",
                                              show_default="minilm-l6, with --llm smollm2-135m")] = None,
    epochs: Annotated[float, typer.Option(min=0.01, help="passes over the training data")] = 4,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after this many steps",
                                                  show_default="none, with --llm 40")] = None,
    procs: Annotated[int, typer.Option(min=1, help="DDP worker processes")] = 1,
    llm: Annotated[bool, typer.Option("--llm", help="instruction-tune SmolLM2-135M-Instruct with LoRA on the "
                                                    "bundled support-routing conversations instead")] = False,
) -> None:
    """Fine-tune MiniLM-L6 on the bundled support-intents data, track it in MLflow and register it
    as quickstart@candidate; with --llm, tune SmolLM2 to route support messages, register it as
    support-router@candidate and ask it one."""
    if llm:
        _quickstart_llm(model or "smollm2-135m", max_steps or 40, procs)
        return
    from rich.markup import escape

    from llmos.quickstart import quickstart_job

    shown = "MiniLM-L6" if model in (None, "minilm-l6") else escape(model)
    console.print(f"[bold]llmos quickstart[/]: fine-tuning {shown} on support-intents "
                  "(8 intents, bundled with llmos)")
    # Always a new run: the quickstart's folder is scratch, its model lives in the registry.
    _run(quickstart_job(model=model or "minilm-l6", epochs=epochs, max_steps=max_steps, procs=procs), fresh=True,
         again="llmos quickstart", resumable=False)


def _quickstart_llm(model: str, max_steps: int, procs: int) -> None:
    from rich.markup import escape

    from llmos.quickstart import LLM_MODEL_NAME, ask, quickstart_llm_job, routing_prompt

    console.print(f"[bold]llmos quickstart --llm[/]: LoRA instruction tuning of {escape(model)} on "
                  "support-routing (chat conversations bundled with llmos), a few minutes on 2 cores")
    _run(quickstart_llm_job(model=model, max_steps=max_steps, procs=procs), fresh=True,
         again="llmos quickstart --llm", resumable=False, next_steps=False)
    ref = f"{LLM_MODEL_NAME}@candidate"
    message = "I was charged twice for my coffee subscription this month."
    console.print(f"\nasking {ref}: [italic]{escape(message)}[/]")
    console.print(f"answer: [bold]{escape(ask(ref, routing_prompt(message)))}[/]")
    console.print("next:")
    console.print(f"  llmos models show {ref}")
    console.print(f"  llmos serve {ref}   # OpenAI-compatible chat completions")
    console.print(f"  llmos compress {ref} --recipe int8-weight   # a smaller child")
    console.print("  llmos spec example train > job.yaml   # your own chat JSONL: see examples/sft-smollm2.yaml")


def _run(job: Any, *, fresh: bool, again: str, resumable: bool = True, json_out: bool = False,
         next_steps: bool = True) -> None:
    from rich.markup import escape

    from llmos.api import run_train
    from llmos.run import EXIT_PREEMPTED

    result = run_train(job, fresh=fresh)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    if result.status == "preempted":
        then = "resumes from it" if resumable else "starts over"
        console.print(f"[yellow]stopped[/] with a checkpoint in {escape(str(result.run_dir))}.\n"
                      f"next: {escape(again)}  ({then})")
        raise typer.Exit(EXIT_PREEMPTED)
    if result.status == "failed":
        console.print(f"[red]training failed[/] (exit code {result.exit_code}); its output is above.\n"
                      f"next: fix the cause and run `{escape(again)}` again"
                      + (" (it resumes from the last checkpoint)" if resumable else ""))
        raise typer.Exit(result.exit_code)
    if not json_out:
        _print_summary(result, next_steps)


def _print_summary(result: TrainResult, next_steps: bool = True) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in result.metrics.items():
        table.add_row(f"eval {key}", f"{value:.4f}")
    table.add_row("steps", str(result.steps))
    table.add_row("wall time", f"{result.wall_s:.1f} s")
    table.add_row("run folder", str(result.run_dir))
    table.add_row("MLflow", f"{result.tracking_uri}  (run {result.run_id or 'not tracked'})")
    reg = result.registered
    if reg:
        table.add_row("registered", f"{reg.name} version {reg.version}" + (f" @{reg.alias}" if reg.alias else ""))
    console.print("[green]done[/]")
    console.print(table)
    if not next_steps:  # the caller goes on and prints its own
        return
    console.print("next:")
    if reg:
        console.print(f"  llmos models show {reg.ref}")
    if result.tracking_uri.startswith(("http://", "https://")):  # a tracking server has its own UI
        console.print(f"  open {result.tracking_uri}   # the run in the MLflow UI")
    else:
        console.print(f"  mlflow ui --backend-store-uri {result.tracking_uri}")
    console.print("  llmos spec example train > job.yaml   # your own data and model")
