"""Scheduler benchmark: the policies on a 5,000-job trace, and decision throughput at scale.

    .venv/bin/python benchmarks/scheduler.py [--runtimes PATH] [--seed 0] [--fair-seeds 8] [--quick]

1. Replays one synthetic trace (5,000 jobs, load 0.85, run times drawn from the Philly trace)
   on 8 nodes x 8 GPUs under fifo, priority, fair and full, and checks full against FIFO of the
   same run: mean JCT <= 0.5x, p99 JCT <= 1.5x, makespan <= 1.05x; every owner within 10% of
   its entitled share while it has work waiting; the replay under a minute. The full policy
   runs once more with quotas (examples/sim/owners-4teams.csv: 16 GPUs guaranteed each).
2. Measures scheduling rounds on 1,000 nodes with 10,000 jobs queued (and how round time grows
   with queue length and nodes): rounds/s and decisions/s must be >= 1,000.
3. With --fair-seeds N (skipped by --quick): fair share and the FIFO ratios of full on seeds
   0..N-1, as fair share on one trace depends on a few long waits of the smallest owner. The
   share is what the policy allocated (capacity being freed by a checkpoint counts for the owner
   it was claimed for); "running" counts only what each owner's jobs hold (see `llmos.sim._report`).
Plots and a JSON record go to benchmarks/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED

from llmos.scheduler import POLICIES, Node, PolicyConfig
from llmos.sim import (
    TraceJob,
    generate_trace,
    load_cluster,
    load_owners,
    load_runtimes,
    owners_table,
    simulate,
    summarize,
    summary_table,
    write_plots,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PHILLY = SHARED / "datasets" / "traces" / "philly_runtime.csv"
console = Console(width=150)  # the tables are wide; keep them whole in logs


def policies_on_trace(runtimes: list[float] | None, seed: int) -> dict:
    nodes = load_cluster(ROOT / "examples" / "sim" / "cluster-64gpu.csv")
    trace = generate_trace(5000, 0.85, nodes, seed=seed, runtimes=runtimes)
    results = {name: simulate(trace, nodes, POLICIES[name]) for name in ("fifo", "priority", "fair", "full")}
    quotas = POLICIES["full"].model_copy(update={"name": "full+quotas"})
    owners = load_owners(ROOT / "examples" / "sim" / "owners-4teams.csv")
    results["full+quotas"] = simulate(trace, nodes, quotas, owners)
    reports = {name: summarize(r) for name, r in results.items()}
    console.print(summary_table(list(reports.values())))
    console.print(owners_table(reports["full"]))
    console.print(owners_table(reports["full+quotas"]))
    for path in write_plots(list(results.values()), OUT):
        console.print(f"plot: {path.relative_to(ROOT)}")
    fifo, full = reports["fifo"], reports["full"]
    floors = {
        "mean JCT full/fifo <= 0.5": (full.jct.mean_s / fifo.jct.mean_s, 0.5),
        "p99 JCT full/fifo <= 1.5": (full.jct.p99_s / fifo.jct.p99_s, 1.5),
        "makespan full/fifo <= 1.05": (full.makespan_s / fifo.makespan_s, 1.05),
        "worst |share/entitled - 1| (full) <= 0.10": (max(abs(o.ratio - 1) for o in full.owners), 0.10),
        "worst |share/entitled - 1| (full+quotas) <= 0.10": (
            max(abs(o.ratio - 1) for o in reports["full+quotas"].owners), 0.10),
        "replay of 5,000 jobs, slowest policy (s) < 60": (max(r.replay_wall_s for r in reports.values()), 60),
    }
    return {"reports": {k: v.model_dump() for k, v in reports.items()}, "floors": floors}


SEED_POLICY = POLICIES["full"]  # --set KEY=VALUE changes it, for sweeps of a knob over the seed table


def fair_seeds(runtimes: list[float] | None, seeds: int) -> list[dict]:
    """Worst owner ratio (time-averaged and instant-wise) and full/fifo figures, seed by seed."""
    nodes = load_cluster(ROOT / "examples" / "sim" / "cluster-64gpu.csv")
    table = Table(title="Fair share of the full policy by seed (5,000 jobs, load 0.85)")
    for col in ("seed", "worst ratio", "owner", "worst ratio, running", "owner", "worst time >= 0.9x", "JCT / fifo",
                "p99 / fifo", "makespan / fifo", "preemptions", "GPU-h lost"):
        table.add_column(col, justify="right")
    rows = []
    for seed in range(seeds):
        trace = generate_trace(5000, 0.85, nodes, seed=seed, runtimes=runtimes)
        fifo, full = (summarize(simulate(trace, nodes, policy)) for policy in (POLICIES["fifo"], SEED_POLICY))
        worst = min(full.owners, key=lambda o: o.ratio)
        worst_running = min(full.owners, key=lambda o: o.ratio_running)
        row = {"seed": seed, "worst_ratio": worst.ratio, "owner": worst.owner,
               "worst_ratio_running": worst_running.ratio_running, "owner_running": worst_running.owner,
               "worst_time_at_90": min(o.time_at_90 for o in full.owners),
               "jct": full.jct.mean_s / fifo.jct.mean_s, "p99": full.jct.p99_s / fifo.jct.p99_s,
               "makespan": full.makespan_s / fifo.makespan_s, "preemptions": full.preemptions,
               "gpu_hours_lost": full.gpu_hours_lost}
        rows.append(row)
        table.add_row(str(seed), f"{row['worst_ratio']:.3f}", worst.owner, f"{row['worst_ratio_running']:.3f}",
                      worst_running.owner, f"{row['worst_time_at_90']:.0%}",
                      f"{row['jct']:.3f}", f"{row['p99']:.2f}", f"{row['makespan']:.3f}", f"{full.preemptions:,}",
                      f"{full.gpu_hours_lost:.0f}")
    console.print(table)
    return rows


def throughput(nodes: int, queued: int, until_s: float) -> dict:
    """Rounds on `nodes` 8-GPU nodes, filled, with `queued` more jobs waiting (all submitted at t=0)."""
    cluster = [Node(f"n{i:05d}", 64, 512, 8) for i in range(nodes)]
    fill = int(nodes * 8 / 2.4 * 1.1)  # the mix averages ~2.4 GPUs a job: enough to fill every GPU
    trace = [TraceJob(replace(t.job, submit_s=0.0), t.duration_s)
             for t in generate_trace(fill + queued, 0.85, cluster, seed=3)]
    result = simulate(trace, cluster, POLICIES["full"], until_s=until_s)
    steady = [(lat, n) for lat, n, t in zip(result.round_latency_s, result.round_decisions,
                                           result.samples.times_s, strict=True) if t > 0]
    lat = sorted(x for x, _ in steady)
    total_s = sum(lat)
    waiting = sum(1 for o in result.outcomes.values() if o.first_start_s is None)
    return {"nodes": nodes, "queued_at_start": queued, "queued_at_end": waiting, "rounds": len(lat),
            "mean_ms": 1e3 * statistics.mean(lat), "p50_ms": 1e3 * lat[len(lat) // 2],
            "p99_ms": 1e3 * lat[int(0.99 * (len(lat) - 1))], "max_ms": 1e3 * lat[-1],
            "rounds_per_s": len(lat) / total_s, "decisions_per_s": sum(n for _, n in steady) / total_s,
            "first_round_ms": 1e3 * result.round_latency_s[0], "preemptions": result.preemptions}


def throughput_section(quick: bool) -> dict:
    main = throughput(1000, 10_000, 1500)
    grid = [(1000, 1000), (1000, 30_000), (100, 10_000), (3000, 10_000)]
    growth = [main] + ([] if quick else [throughput(n, q, 600) for n, q in grid])
    table = Table(title="Scheduling rounds (full policy), steady state after the first round")
    for col in ("nodes", "queued", "rounds", "mean ms", "p50 ms", "p99 ms", "max ms", "rounds/s", "decisions/s",
                "first round ms"):
        table.add_column(col, justify="right")
    for g in growth:
        table.add_row(f"{g['nodes']:,}", f"{g['queued_at_start']:,}", f"{g['rounds']:,}", f"{g['mean_ms']:.2f}",
                      f"{g['p50_ms']:.2f}", f"{g['p99_ms']:.2f}", f"{g['max_ms']:.1f}", f"{g['rounds_per_s']:,.0f}",
                      f"{g['decisions_per_s']:,.0f}", f"{g['first_round_ms']:.0f}")
    console.print(table)
    floors = {"rounds/s at 1,000 nodes, 10,000 queued >= 1000": (main["rounds_per_s"], 1000),
              "decisions/s at 1,000 nodes, 10,000 queued >= 1000": (main["decisions_per_s"], 1000)}
    return {"throughput": growth, "floors": floors}


def print_floors(floors: dict) -> None:
    table = Table(title="Floors")
    for col in ("floor", "measured", "verdict"):
        table.add_column(col)
    for name, (value, bound) in floors.items():
        ok = value >= bound if ">=" in name else value <= bound if "<=" in name else value < bound
        table.add_row(name, f"{value:,.3f}", "[green]PASS[/]" if ok else "[red]FAIL[/]")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", type=Path, default=PHILLY, help="CSV of observed run times (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="skip the growth grid and the seed table")
    parser.add_argument("--fair-seeds", type=int, default=8, help="seeds 0..N-1 for the fair-share table (0: skip)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a PolicyConfig field of the seed table's full policy, e.g. settle_s=900 (repeatable)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    runtimes = load_runtimes(args.runtimes) if args.runtimes.is_file() else None
    if runtimes is None:
        console.print(f"[yellow]{args.runtimes} not found: using the built-in log-normal run times[/]")
    began = time.perf_counter()
    global SEED_POLICY
    if bad := [kv for kv in args.set if "=" not in kv]:
        parser.error(f"--set takes KEY=VALUE (a PolicyConfig field), got {bad[0]!r}")
    changes = dict(kv.split("=", 1) for kv in args.set)
    SEED_POLICY = PolicyConfig.model_validate({**POLICIES["full"].model_dump(), **changes})
    record = policies_on_trace(runtimes, args.seed)
    record_tp = throughput_section(args.quick)
    floors = {**record["floors"], **record_tp["floors"]}
    if not args.quick and args.fair_seeds > 0:
        record["fair_seeds"] = fair_seeds(runtimes, args.fair_seeds)
    print_floors(floors)
    record.update(throughput=record_tp["throughput"], floors=floors, seed=args.seed,
                  runtimes=str(args.runtimes) if runtimes else "log-normal", wall_s=time.perf_counter() - began)
    (OUT / "scheduler.json").write_text(json.dumps(record, indent=2))
    console.print(f"record: {(OUT / 'scheduler.json').relative_to(ROOT)} ({record['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
