"""`llmos submit | jobs | jobs show | logs | cancel`: jobs on the control plane, over its REST API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console

jobs_app = typer.Typer(help="Jobs on the control plane: list them (default) or show one.",
                       invoke_without_command=True)
_FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.add_typer(jobs_app, name="jobs")
    app.command()(logs)
    app.command()(cancel)


def submit(
    file: Annotated[Path, typer.Argument(help="job spec (YAML)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-5")] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or critical")] = "normal",
    project: Annotated[str | None, typer.Option(help="whose fair share it counts against [default: you]")] = None,
    max_retries: Annotated[int | None, typer.Option(min=0, help="retries after a failure [default: 2]")] = None,
) -> None:
    """Queue a job on the control plane; prints its id at once."""
    from llmos.control import Client

    with Client.local() as client:
        job = client.submit_file(file, overrides, priority=priority, project=project, max_retries=max_retries)
    if "id" not in job:  # a kind: serve spec is a deployment
        console.print(f"deployed [bold]{job['name']}[/] ({job.get('model')}) at {job.get('url')}\nnext: llmos status")
        return
    console.print(f"submitted job [bold]{job['id']}[/] ({job['state']})")
    console.print(f"next: llmos logs {job['id']} -f   (or: llmos jobs show {job['id']})")


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="only these states, e.g. RUNNING,QUEUED")] = None,
    owner: Annotated[str | None, typer.Option(help="only this owner's jobs")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="newest N jobs")] = 50,
) -> None:
    """List jobs, newest first: state, owner, resources, placement, age."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from llmos.cli.control import _age, _ranges
    from llmos.control import Client

    with Client.local() as client:
        rows = client.jobs(state=state, owner=owner, limit=limit)
        deployments = client.deployments()
    if not rows and not deployments:
        console.print("no jobs yet.\nnext: llmos submit job.yaml")
        return
    table = Table()
    for column in ("id", "name", "state", "owner", "priority", "resources", "placement", "tries", "age"):
        # The words people grep for (ids, states) are never wrapped or cut.
        table.add_column(column, no_wrap=column in ("id", "state", "age"), min_width=9 if column == "state" else None)
    for j in rows:
        res = f"{j['workers']}x{j['cpus']:g}cpu" + (f" {j['gpus']}gpu" if j["gpus"] else "") + (
            f" {j['memory_gb']:g}GB" if j["memory_gb"] else "")
        place = j["placement"]
        where = "-" if place is None else f"cores {_ranges(place['cores'])}" + (
            f" gpu {_ranges(place['gpus'])}" if place["gpus"] else "")
        table.add_row(str(j["id"]), j["name"], _colour(j["state"]), j["owner"], j["priority"], res, where,
                      str(j["attempt"]), _age(j["submit_s"]))
    for d in deployments:
        table.add_row(d["name"], f"{d.get('model', '')} (serve)", _colour("RUNNING" if d.get("ready") else "STARTING"),
                      d.get("owner", ""), "-", f"{d.get('ready', 0)}/{d.get('desired', 0)} replicas"
                      + (f", {d['waiting']} waiting" if d.get("waiting") else ""),
                      d.get("url", ""), "-", "-")
    console.print(table)
    console.print(f"next: llmos jobs show {rows[0]['id']}" if rows else "next: llmos status")


@jobs_app.command("show")
def show(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """One job: its spec summary, every state change with time and reason, its attempts and logs."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        j = client.job(job_id)
    console.print(f"job [bold]{j['id']}[/] {j['name']} ({j['kind']}): {_colour(j['state'])}  owner {j['owner']}, "
                  f"project {j['project']}, priority {j['priority']}")
    console.print(f"  asks      {j['workers']} worker(s) x {j['cpus']:g} CPU, {j['memory_gb']:g} GB, {j['gpus']} GPU")
    if j["run_dir"]:
        console.print(f"  run dir   {j['run_dir']}")
    console.print(f"  failures  {j['failures']} (retried up to {j['max_retries']} times)")
    history = Table("time", "from", "to", "attempt", "reason", title="history", title_justify="left")
    for t in j["transitions"]:
        history.add_row(_clock(t["at_s"]), t["from"] or "-", _colour(t["to"]), str(t["attempt"]), escape(t["reason"]))
    console.print(history)
    if j["attempts"]:
        tries = Table("attempt", "started", "ended", "exit", "outcome", "pid", "cores", title="attempts",
                      title_justify="left")
        for a in j["attempts"]:
            cores = [c for w in (a["placement"] or {"workers": []})["workers"] for c in w["cores"]]
            tries.add_row(str(a["number"]), _clock(a["started_s"]), _clock(a["ended_s"]) if a["ended_s"] else "-",
                          "-" if a["exit_code"] is None else str(a["exit_code"]), a["outcome"] or "-",
                          str(a["pid"] or "-"), ",".join(map(str, cores)))
        console.print(tries)
    for f in j["logs"]:
        console.print(f"  log  {f['name']}  ({f['size']} bytes)")
    console.print(f"next: llmos logs {j['id']}" + ("" if j["state"] in _FINAL else f"   (or: llmos cancel {j['id']})"))


def logs(
    job_id: Annotated[int, typer.Argument(help="job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming until the job ends")] = False,
) -> None:
    """Print a job's output: every attempt, every worker."""
    import sys

    from llmos.control import Client

    offsets: dict[str, int] = {}
    with Client.local() as client:
        while True:
            state = client.job(job_id)["state"] if follow else None
            files = client.log_files(job_id)
            for f in files:
                start = offsets.get(f["name"], 0)
                if f["size"] <= start:
                    continue
                chunk = client.read_log(job_id, f["name"], start)
                offsets[f["name"]] = chunk["offset"]
                if not chunk["text"]:
                    continue
                if follow and len(files) > 1:
                    label = f["name"].removesuffix(".log")
                    text = "".join(f"[{label}] {line}" for line in chunk["text"].splitlines(keepends=True))
                else:
                    text = chunk["text"] if follow else f"==> {f['name']} <==\n{chunk['text']}"
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                sys.stdout.flush()
            if not follow or state in _FINAL:
                break
            time.sleep(0.5)


def cancel(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Cancel a job: queued ones leave the queue, running ones get SIGTERM (then SIGKILL after the grace period)."""
    from llmos.control import Client

    with Client.local() as client:
        client.cancel(job_id)
    console.print(f"job {job_id} cancelled.\nnext: llmos jobs show {job_id}")


def _colour(state: str) -> str:
    colour = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan",
              "PREEMPTED": "magenta"}.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def _clock(at_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at_s)) + f".{int(at_s % 1 * 1000):03d}"
