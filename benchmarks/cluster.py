"""Cluster-mode benchmark (issue 13, point 8): the scheduler over an inventory as the Ray executor
builds it (DDP, start latency and node loss: benchmarks/cluster_live.py).

    python benchmarks/cluster.py [--nodes 1000] [--queued 2000] [--rounds 200] [--ends-per-round 50] [--seed 0]

1. Scheduling rounds over a 1,000-node inventory built from `ray.nodes()`-shaped records (mixed
   CPU-only and GPU nodes of two GPU types), with 500 jobs placed first (they hold most GPUs) when
   2,000 jobs arrive at once (CPU jobs, 1-8 GPU jobs, 2-node gangs; four priority classes; eight
   owners). A round: the inventory is rebuilt from the records (the Ray executor does this every
   second), the snapshot is built, `llmos.scheduler.schedule` decides, and its starts, preemptions
   and rejections are applied. The burst round is the first after the arrival; before each steady
   round --ends-per-round running jobs have ended and as many new ones arrived. Floor: >= 1,000
   decisions/s (issue 13.8). Wall time, and CPU time beside it: other work shares the machine.
   Two ways, from the same start: a new scheduler Cluster every round (what the daemon's
   build_snapshot does now) and one Cluster kept while the inventory is unchanged (its memo of
   which job shapes can ever fit then survives the round).
2-4. DDP samples/s on 2 Ray nodes vs 2 local processes, submit -> first step latency, node loss ->
   training resumed: benchmarks/cluster_live.py, on the real test cluster.
A JSON record goes to benchmarks/out/cluster.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, REPO

from llmos.executor._ray_inventory import hosts_from_ray
from llmos.scheduler import POLICIES, Cluster, Job, Node, Resources, RunningJob, Snapshot, schedule

console = Console(width=150)
NodesFromRay = Callable[[Iterable[Mapping[str, Any]]], list[Node]]
OWNERS = [f"team{i}" for i in range(8)]
CLASSES = [0, 1, 2, 3]  # priority ranks: low, normal, high, critical


def ray_records(nodes: int, seed: int) -> list[dict[str, Any]]:
    """`ray.nodes()`-shaped records: 70% CPU-only nodes (64 CPUs, 256 GB), 20% 8 x A100 and 10% 8 x H100
    nodes (96 CPUs, 1 TB); Ray reports memory in bytes and a GPU type as an `accelerator_type:` resource."""
    rng = random.Random(seed)
    records = []
    for i in range(nodes):
        draw = rng.random()
        resources: dict[str, float] = {"CPU": 64.0, "memory": 256e9, "object_store_memory": 8e9}
        if draw >= 0.7:
            kind = "A100" if draw < 0.9 else "H100"
            resources.update({"CPU": 96.0, "memory": 1e12, "GPU": 8.0, f"accelerator_type:{kind}": 1.0})
        node_id = f"{i:056x}"
        records.append({"NodeID": node_id, "Alive": True, "NodeManagerAddress": f"10.{i // 250}.{i % 250}.2",
                        "Resources": {**resources, f"node:10.{i // 250}.{i % 250}.2": 1.0},
                        "Labels": {"ray.io/node-id": node_id}})
    return records


def nodes_from_records(records: Iterable[Mapping[str, Any]]) -> list[Node]:
    """The scheduler's nodes exactly as the daemon's Ray inventory builds them (llmos.executor)."""
    return hosts_from_ray(records).nodes()


def workload(count: int, seed: int, start_s: float = 0.0) -> list[Job]:
    """A mix of queued jobs: 50% CPU jobs (4-32 CPUs), 40% single-node GPU jobs (1-8 GPUs, a third asking
    for a GPU type), 10% 2-node gangs of 8-GPU workers; run-time estimates for half of them."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        draw, workers, gpu_type = rng.random(), 1, None
        if draw < 0.5:
            per_worker = Resources(rng.choice([4, 8, 16, 32]), rng.choice([16, 32, 64]), 0)
        elif draw < 0.9:
            gpus = rng.choice([1, 1, 2, 4, 8])
            per_worker = Resources(8 * gpus, 64 * gpus, gpus)
            gpu_type = rng.choice([None, None, "A100", "H100"])
        else:
            per_worker, workers = Resources(64, 512, 8), 2
        estimate = rng.choice([None, rng.uniform(600, 36_000)])
        jobs.append(Job(f"j{seed}-{i}", rng.choice(OWNERS), start_s + i * 0.01, per_worker, workers,
                        priority=rng.choice(CLASSES), gpu_type=gpu_type, runtime_estimate_s=estimate,
                        checkpoint_s=rng.choice([0.0, 30.0, 120.0])))
    return jobs


def _round(records: list[dict[str, Any]], build: NodesFromRay, now_s: float, running: dict[str, RunningJob],
           queue: dict[str, Job], kept: dict[tuple[Node, ...], Cluster] | None) -> dict:
    """One round as the daemon runs it on Ray: inventory from the records, snapshot, decision; the
    decision is applied to `running` and `queue`. Wall and CPU seconds (other work shares this machine).
    `kept`: None builds a new scheduler Cluster every round; a dict keeps one per inventory, and with
    it the Cluster's memo of which job shapes can ever fit (what the daemon does: its Ray inventory
    keeps one Cluster object while the nodes do not change, and that object its scheduler index)."""
    w0, c0 = time.perf_counter(), time.process_time()
    built = build(records)
    nodes: list[Node] | Cluster = built if kept is None else kept.setdefault(tuple(built), Cluster(built))
    w1 = time.perf_counter()
    snapshot = Snapshot.build(now_s, nodes, running.values(), queue.values())
    w2 = time.perf_counter()
    decision = schedule(snapshot, POLICIES["full"])
    w3, c3 = time.perf_counter(), time.process_time()
    for start in decision.starts:
        running[start.job_id] = RunningJob(queue.pop(start.job_id), start.placement, now_s)
    for preempt in decision.preempts:  # back to the queue, keeping its place
        queue[preempt.job_id] = running.pop(preempt.job_id).job
    for reject in decision.rejects:
        queue.pop(reject.job_id, None)
    decided = len(decision.starts) + len(decision.preempts) + len(decision.rejects)
    return {"build_s": w1 - w0, "snapshot_s": w2 - w1, "schedule_s": w3 - w2, "cpu_s": c3 - c0,
            "decisions": decided, "nodes": len(built)}


def rounds(records: list[dict[str, Any]], build: NodesFromRay, args: argparse.Namespace, keep: bool) -> dict:
    """About half the cluster busy; `queued` jobs arrive at once (the burst round places what fits);
    then `rounds` rounds; before each, `ends_per_round` running jobs end and as many new ones arrive."""
    rng = random.Random(args.seed)
    kept: dict[tuple[Node, ...], Cluster] | None = {} if keep else None
    running: dict[str, RunningJob] = {}
    queue = {job.job_id: job for job in workload(len(records) // 2, args.seed + 1)}
    _round(records, build, 0.0, running, queue, kept)
    queue = {job.job_id: job for job in workload(args.queued, args.seed, start_s=1.0)}
    burst = _round(records, build, 30.0, running, queue, kept)
    held = _held(build(records), running)
    steady = []
    for r in range(1, args.rounds + 1):
        for job_id in rng.sample(sorted(running), min(len(running), args.ends_per_round)):
            del running[job_id]
        now_s = 30.0 + 60.0 * r
        queue.update((job.job_id, job) for job in workload(args.ends_per_round, 1000 + r, start_s=now_s - 30.0))
        steady.append(_round(records, build, now_s, running, queue, kept))
    return {"burst": summarize([burst]), "steady": summarize(steady), "held_after_burst": held,
            "running_at_end": len(running),
            "queued_at_end": len(queue), "nodes": burst["nodes"]}


def _held(nodes: list[Node], running: dict[str, RunningJob]) -> dict[str, float]:
    """The share of the cluster's CPUs and GPUs that running jobs hold."""
    slots = [slot for job in running.values() for slot in job.placement]
    return {"cpus": sum(s.cpus for s in slots) / sum(n.cpus for n in nodes),
            "gpus": sum(len(s.gpu_indices) for s in slots) / sum(n.gpus for n in nodes)}


def summarize(rows: list[dict]) -> dict:
    total = sorted(row["build_s"] + row["snapshot_s"] + row["schedule_s"] for row in rows)
    decisions = sum(row["decisions"] for row in rows)
    mean_ms = {f"{k}_ms": 1e3 * statistics.mean(row[f"{k}_s"] for row in rows)
               for k in ("build", "snapshot", "schedule", "cpu")}
    return {"rounds": len(rows), "decisions": decisions, **mean_ms,
            "round_p50_ms": 1e3 * total[len(total) // 2], "round_p99_ms": 1e3 * total[int(0.99 * (len(total) - 1))],
            "decisions_per_s": decisions / sum(total), "rounds_per_s": len(rows) / sum(total),
            "decisions_per_cpu_s": decisions / sum(row["cpu_s"] for row in rows)}


def scheduling_section(args: argparse.Namespace, build: NodesFromRay = nodes_from_records) -> dict:
    """Both ways of building the round's scheduler Cluster, each from the same start."""
    records = ray_records(args.nodes, args.seed)
    results = {"new each round": rounds(records, build, args, keep=False),
               "kept per inventory": rounds(records, build, args, keep=True)}
    nodes = next(iter(results.values()))["nodes"]
    table = Table(title=f"Scheduling rounds over a Ray-built inventory of {nodes:,} nodes (full policy, "
                        f"{args.queued:,} queued at once; {args.ends_per_round} end and arrive before each round)")
    columns = ("rounds", "decisions", "build ms", "snapshot ms", "schedule ms", "CPU ms", "round p50 ms",
               "round p99 ms", "rounds/s", "decisions/s", "per CPU-s")
    table.add_column("scheduler Cluster")
    table.add_column("phase")
    for col in columns:
        table.add_column(col, justify="right")
    floors = {}
    for way, result in results.items():
        for phase in ("burst", "steady"):
            r = result[phase]
            table.add_row(way, phase, f"{r['rounds']:,}", f"{r['decisions']:,}", f"{r['build_ms']:.2f}",
                          f"{r['snapshot_ms']:.2f}", f"{r['schedule_ms']:.2f}", f"{r['cpu_ms']:.2f}",
                          f"{r['round_p50_ms']:.2f}", f"{r['round_p99_ms']:.2f}", f"{r['rounds_per_s']:,.1f}",
                          f"{r['decisions_per_s']:,.0f}", f"{r['decisions_per_cpu_s']:,.0f}")
            floors[f"{way}, {phase}"] = r["decisions_per_s"]
    console.print(table)
    for way, result in results.items():
        held = result["held_after_burst"]
        console.print(f"{way}: after the burst round running jobs hold {held['cpus']:.0%} of the CPUs and "
                      f"{held['gpus']:.0%} of the GPUs; at the end {result['running_at_end']:,} running, "
                      f"{result['queued_at_end']:,} queued")
    for name, value in floors.items():
        verdict = "[green]PASS[/]" if value >= 1000 else "[red]FAIL[/]"
        console.print(f"floor: decisions/s >= 1,000 ({name}): {verdict} ({value:,.0f})")
    return {"results": results, "floor_decisions_per_s": 1000, "decisions_per_s": floors}


# DDP samples/s, submit -> first step and node loss -> resumed are measured on the real test cluster
# by benchmarks/cluster_live.py.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--ends-per-round", type=int, default=50, help="running jobs that end before each round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    record = {"scheduling": scheduling_section(args), "args": vars(args)}
    record["wall_s"] = time.perf_counter() - began
    (OUT / "cluster.json").write_text(json.dumps(record, indent=2))
    console.print(f"record: {(OUT / 'cluster.json').relative_to(REPO)} ({record['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
