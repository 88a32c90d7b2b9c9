"""`llmos submit | jobs [ls] | jobs show | logs | cancel`: jobs on the control plane, over its REST API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmos.cli._render import JsonFlag, console, print_json

if TYPE_CHECKING:
    from llmos.api import LogChunk

jobs_app = typer.Typer(help="Jobs on the control plane: list them (default) or show one.",
                       invoke_without_command=True)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.add_typer(jobs_app, name="jobs")
    app.command()(logs)
    app.command()(cancel)


def submit(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-5")] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or critical")] = "normal",
    project: Annotated[str | None, typer.Option(help="the project it runs in (your role there decides; its quota "
                                                     "and fair share count it)", show_default="your default project")
                       ] = None,
    max_retries: Annotated[int | None, typer.Option(min=0, help="retries after a failure", show_default="2")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Queue a job on the control plane; prints its id at once."""
    from llmos.api import Client, Deployment

    with Client() as client:
        job = client.submit(file, priority=priority, project=project, max_retries=max_retries,
                            dotted=overrides or [])
    if json_out:
        print_json(job)
    elif isinstance(job, Deployment):  # a kind: serve spec is a deployment
        console.print(f"deployed [bold]{job.name}[/] ({job.model}) at {job.url}\nnext: llmos deploy show {job.name}")
    else:
        console.print(f"submitted job [bold]{job.id}[/] ({job.state})")
        console.print(f"next: llmos logs {job.id} -f   (or: llmos jobs show {job.id})")


_State = Annotated[str | None, typer.Option(help="only these states, e.g. RUNNING,QUEUED")]
_Owner = Annotated[str | None, typer.Option(help="only this owner's jobs")]
_Limit = Annotated[int, typer.Option(min=1, max=10_000, help="newest N jobs")]


@jobs_app.callback()
def jobs(ctx: typer.Context, state: _State = None, owner: _Owner = None, limit: _Limit = 50,
         json_out: JsonFlag = False) -> None:
    """List jobs (as `llmos jobs ls`), or show one."""
    if ctx.invoked_subcommand is None:
        ls(state=state, owner=owner, limit=limit, json_out=json_out)


@jobs_app.command("ls")
def ls(state: _State = None, owner: _Owner = None, limit: _Limit = 50, json_out: JsonFlag = False) -> None:
    """List jobs, newest first: state, owner, resources, placement, age; then the deployments."""
    from rich.table import Table

    from llmos.api import Client
    from llmos.cli.control import _age, _ranges

    with Client() as client:
        rows = client.jobs(state=state, owner=owner, limit=limit)
        deployments = client.deployments()
    if json_out:
        print_json({"jobs": rows, "deployments": deployments})
        return
    if not rows and not deployments:
        console.print("no jobs yet.\nnext: llmos submit job.yaml")
        return
    table = Table()
    for column in ("id", "name", "state", "owner", "priority", "resources", "placement", "tries", "age"):
        # The words people grep for (ids, states) are never wrapped or cut.
        table.add_column(column, no_wrap=column in ("id", "state", "age"), min_width=9 if column == "state" else None)
    for j in rows:
        res = "its stages' jobs" if j.kind == "pipeline" else f"{j.workers}x{j.cpus:g}cpu" + (
            f" {j.gpus}gpu" if j.gpus else "") + (f" {j.memory_gb:g}GB" if j.memory_gb else "")
        place = j.placement
        where = "-" if place is None else (", ".join(place["addresses"]) if place.get("addresses") else
                                           f"cores {_ranges(place['cores'])}") + (
            f" gpu {_ranges(place['gpus'])}" if place["gpus"] else "")
        table.add_row(str(j.id), j.name, _colour(j.state), j.owner, j.priority, res, where, str(j.attempt),
                      _age(j.submit_s))
    for d in deployments:
        table.add_row(d.name, f"{d.model} (serve)", _colour("RUNNING" if d.ready else "STARTING"), d.owner, "-",
                      f"{d.ready}/{d.desired} replicas" + (f", {d.waiting} waiting" if d.waiting else ""),
                      d.url, "-", "-")
    console.print(table)
    console.print(f"next: llmos jobs show {rows[0].id}" if rows else "next: llmos deploy ls")


@jobs_app.command("show")
def show(job_id: Annotated[int, typer.Argument(help="job id")], json_out: JsonFlag = False) -> None:
    """One job: its spec summary, every state change with time and reason, its attempts and logs."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.api import Client

    with Client() as client:
        j = client.job(job_id)
    if json_out:
        print_json(j)
        return
    console.print(f"job [bold]{j.id}[/] {j.name} ({j.kind}): {_colour(j.state)}  owner {j.owner}, "
                  f"project {j.project}, priority {j.priority}")
    if j.kind == "sweep" and j.sweep is not None:
        from llmos.cli._sweep import trial_table

        console.print(f"  {escape(j.reason)}\n  study {j.sweep['study']} (in the control plane's database), "
                      f"trial folders {j.sweep['folder']}")
        console.print(trial_table(j.name, j.sweep["metric"], j.sweep["trials"]))
        live = [t["job_id"] for t in j.sweep["trials"] if t["state"] == "running"]
        console.print(f"next: llmos logs {live[0]}" if live else "next: llmos models ls")
        return
    if j.kind == "pipeline":
        console.print(f"  {escape(j.reason)}")
        console.print(stage_graph(j.name, j.stages))
        running = [s["job_id"] for s in j.stages if s.get("job_id") and s["state"] == "RUNNING"]
        console.print(f"next: llmos logs {running[0]}" if running else
                      f"next: llmos jobs show {next((s['job_id'] for s in j.stages if s.get('job_id')), j.id)}")
        return
    console.print(f"  asks      {j.workers} worker(s) x {j.cpus:g} CPU, {j.memory_gb:g} GB, {j.gpus} GPU")
    if j.run_dir:
        console.print(f"  run dir   {j.run_dir}")
    console.print(f"  failures  {j.failures} (retried up to {j.max_retries} times)")
    history = Table("time", "from", "to", "attempt", "reason", title="history", title_justify="left")
    for t in j.transitions:
        history.add_row(_clock(t.at_s), t.from_state or "-", _colour(t.to), str(t.attempt), escape(t.reason))
    console.print(history)
    if j.attempts:
        tries = Table("attempt", "started", "ended", "exit", "outcome", "pid", "cores / nodes", title="attempts",
                      title_justify="left")
        for a in j.attempts:
            placed = (a.placement or {"workers": []})["workers"]
            where = ",".join(w["address"] if "address" in w else ",".join(map(str, w["cores"])) for w in placed)
            tries.add_row(str(a.number), _clock(a.started_s), _clock(a.ended_s) if a.ended_s else "-",
                          "-" if a.exit_code is None else str(a.exit_code), a.outcome or "-",
                          str(a.pid or "-"), where)
        console.print(tries)
    for f in j.logs:
        console.print(f"  log  {f['name']}  ({f['size']} bytes)")
    console.print(f"next: llmos logs {j.id}" + ("" if j.done else f"   (or: llmos cancel {j.id})"))


def stage_graph(name: str, stages: list[dict]) -> Any:
    """A pipeline as a tree: each stage under the stage it waits for (`<- also X` for any other), with
    its state, its job and what it yielded or why it failed."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[bold]pipeline {escape(name)}[/]")
    nodes: dict[str, Any] = {}
    for s in stages:
        needs = [n for n in s.get("needs", []) if n in nodes]
        job = f" job {s['job_id']}" if s.get("job_id") else ""
        also = f" [dim]<- also {', '.join(needs[1:])}[/]" if len(needs) > 1 else ""
        what = s.get("model") if s["state"] == "SUCCEEDED" and s.get("model") else s.get("reason") or ""
        label = (f"[bold]{escape(s['name'])}[/] ({s['action']}) {_colour(s['state'])}{job}{also}"
                 + (f"\n[dim]{escape(str(what))}[/]" if what else ""))
        parent = nodes[needs[0]] if needs else root
        nodes[s["name"]] = parent.add(("-> " if needs else "") + label)
    return root


def logs(
    job_id: Annotated[int, typer.Argument(help="job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming until the job ends")] = False,
) -> None:
    """Print a job's output: every attempt, every worker."""
    from llmos.api import Client

    with Client() as client:
        write_chunks(client.log_chunks(job_id, follow=follow), follow)


def write_chunks(chunks: Iterable[LogChunk], follow: bool) -> None:
    """Log text as it comes: followed, each line after its file's name when there are several;
    else each file after a `==> name <==` header."""
    import sys

    for c in chunks:
        if follow and c.files > 1:
            label = c.file.removesuffix(".log")
            text = "".join(f"[{label}] {line}" for line in c.text.splitlines(keepends=True))
        else:
            text = c.text if follow else f"==> {c.file} <==\n{c.text}"
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def cancel(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Cancel a job: queued ones leave the queue, running ones get SIGTERM (then SIGKILL after the grace period)."""
    from llmos.api import Client

    with Client() as client:
        client.cancel(job_id)
    console.print(f"job {job_id} cancelled.\nnext: llmos jobs show {job_id}")


def _colour(state: str) -> str:
    colour = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan",
              "PREEMPTED": "magenta", "SKIPPED": "yellow"}.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def _clock(at_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at_s)) + f".{int(at_s % 1 * 1000):03d}"
