"""`llmos sim`: replay job traces through the scheduling policies, and make synthetic traces.

A thin shell: parse, call `llmos.sim`, render. The library is imported inside the commands so
that `llmos --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console

app = typer.Typer(help="Simulate scheduling policies on job traces.", no_args_is_help=True)


@app.command("run")
def run(
    trace: Annotated[Path, typer.Option(help="Trace CSV: one job per row (see `llmos sim generate`).")],
    cluster: Annotated[Path, typer.Option(help="Cluster CSV: node,cpus,memory_gb,gpus,gpu_type.")],
    policy: Annotated[str, typer.Option(help="Policy, or several separated by commas: fifo, priority, "
                                             "fair, full.")] = "full",
    owners: Annotated[Path | None, typer.Option(help="Owners CSV: owner,weight,guarantee_gpus,cap_gpus,...")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the reports as JSON here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")] = None,
) -> None:
    """Replay a trace on a cluster under one or more policies and report JCT, fairness and more."""
    from llmos.scheduler import policy_config
    from llmos.sim import load_cluster, load_owners, load_trace, owners_table, simulate, summarize, summary_table

    configs = [policy_config(name.strip()) for name in policy.split(",") if name.strip()]
    jobs, nodes = load_trace(trace), load_cluster(cluster)
    owner_list = load_owners(owners) if owners else []
    results = [_simulate(simulate, jobs, nodes, config, owner_list) for config in configs]
    reports = [summarize(r) for r in results]
    console.print(summary_table(reports))
    for report in reports:
        console.print(owners_table(report))
        _print_rejections(report)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"reports": [r.model_dump() for r in reports]}, indent=2))
        console.print(f"reports written to {json_out}")
    if plots:
        from llmos.sim import write_plots

        for path in write_plots(results, plots):
            console.print(f"plot written to {path}")
    if len(configs) == 1 and configs[0].name != "fifo":
        console.print(f"next: compare with the baseline: llmos sim run --trace {trace} --cluster {cluster} "
                      f"--policy fifo,{configs[0].name}")


def _simulate(simulate, jobs, nodes, config, owners):
    if not console.is_terminal:  # no bar in pipes and logs
        return simulate(jobs, nodes, config, owners)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {config.name}", total=len(jobs))
        return simulate(jobs, nodes, config, owners,
                        progress=lambda done, total: progress.update(task, completed=done))


def _print_rejections(report) -> None:
    if not report.rejected:
        return
    console.print(f"[yellow]{len(report.rejected)} job(s) rejected ({report.policy}): they can never fit:[/]")
    for r in report.rejected[:10]:
        console.print(f"  {r.job_id}: {r.reason}")


@app.command("generate")
def generate(
    jobs: Annotated[int, typer.Option(help="Number of jobs.")],
    load: Annotated[float, typer.Option(help="Offered GPU load as a fraction of the cluster (0.85: busy).")],
    cluster: Annotated[Path, typer.Option(help="Cluster CSV the load is scaled to.")],
    out: Annotated[Path, typer.Option(help="Where to write the trace CSV.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same trace).")] = 0,
    runtimes: Annotated[Path | None, typer.Option(
        help="CSV of observed run times in seconds (column runtime, runtime_s or duration_s).",
        show_default="a log-normal with the Philly trace's median and mean")] = None,
) -> None:
    """Make a synthetic trace: Poisson arrivals at the given load, a realistic mix of job sizes."""
    from llmos.sim import generate_trace, load_cluster, load_runtimes, write_trace

    nodes = load_cluster(cluster)
    samples = load_runtimes(runtimes) if runtimes else None
    trace = generate_trace(jobs, load, nodes, seed=seed, runtimes=samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_trace(out, trace)
    span_d = (trace[-1].job.submit_s - trace[0].job.submit_s) / 86400
    console.print(f"wrote {len(trace):,} jobs over {span_d:.1f} simulated days to {out}")
    console.print(f"next: llmos sim run --trace {out} --cluster {cluster} --policy fifo,full")
