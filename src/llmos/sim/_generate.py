"""Synthetic traces: Poisson arrivals scaled to a target load, a realistic job-size mix.

Run times are drawn from a user-supplied distribution (a CSV of observed run times, such as
the Philly trace's) or, without one, from a log-normal with the Philly trace's median (1,186 s)
and mean (14,613 s), whose tail is as heavy as the real one's. Arrivals are spaced so that
the offered GPU-seconds per second are `load` x the cluster's GPUs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from llmos.scheduler import PRIORITY_CLASSES, Job, Node, Resources
from llmos.sim._csv import read_rows
from llmos.sim._errors import TraceError
from llmos.sim._trace import TraceJob

__all__ = ["DEFAULT_OWNERS", "generate_trace", "load_runtimes"]

# Most jobs are small, most GPU-time is in the large ones (as in Philly and Helios traces).
_SIZES = ((1, 0.60), (2, 0.15), (4, 0.15), (8, 0.10))
# Owners with unequal appetites, so that fair share has something to do.
DEFAULT_OWNERS = (("team-a", 0.40), ("team-b", 0.30), ("team-c", 0.20), ("team-d", 0.10))
_CLASSES = (("low", 0.15), ("normal", 0.70), ("high", 0.15))
_RUNTIME_COLUMNS = ("runtime", "runtime_s", "duration_s")
_LOGNORMAL_MU = math.log(1186.0)
_LOGNORMAL_SIGMA = math.sqrt(2 * math.log(14613.0 / 1186.0))  # matches the mean given the median
_MAX_RUNTIME_S = 60 * 86_400.0


def load_runtimes(path: str | Path) -> list[float]:
    """Run times in seconds from the first of the columns runtime, runtime_s, duration_s."""
    path = Path(path)
    header = _header(path)
    column = next((c for c in _RUNTIME_COLUMNS if c in header), None)
    if column is None:
        raise TraceError(f"run-time file {str(path)!r} has none of the columns {', '.join(_RUNTIME_COLUMNS)}.",
                         hint="Give the file a header naming its run-time column, in seconds.")
    values = [row.number(column) for row in read_rows(path, (column,), "run-time", TraceError)]
    if not values:
        raise TraceError(f"run-time file {str(path)!r} has no rows.", hint="Add observed run times, one per row.")
    return values


def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise TraceError(f"run-time file {str(path)!r} does not exist.", hint="Pass a CSV of run times in seconds.")
    with path.open() as fh:
        return [h.strip() for h in fh.readline().strip().split(",")]


def generate_trace(jobs: int, load: float, nodes: Sequence[Node], seed: int = 0,
                   runtimes: Sequence[float] | None = None,
                   owners: Sequence[tuple[str, float]] = DEFAULT_OWNERS) -> list[TraceJob]:
    """`jobs` synthetic jobs whose offered load is `load` x the GPUs of `nodes`."""
    if jobs < 1:
        raise TraceError(f"--jobs must be >= 1, got {jobs}.", hint="Ask for at least one job.")
    if not 0 < load <= 10:
        raise TraceError(f"--load must be in (0, 10], got {load}.", hint="0.85 keeps the cluster busy but stable.")
    node_gpus = max((n.gpus for n in nodes), default=0)
    if node_gpus == 0:
        raise TraceError("the cluster has no GPUs, so a GPU load cannot be generated.",
                         hint="Use a cluster file with at least one GPU node.")
    rng = random.Random(seed)
    cpus_per_gpu, mem_per_gpu = _per_gpu_budget(nodes)
    drafts = [_draft(rng, i, runtimes, node_gpus, cpus_per_gpu, mem_per_gpu, owners) for i in range(jobs)]
    gpu_s = sum(d[1].gpus * d[2] * d[3] for d in drafts) / jobs
    rate_per_s = load * sum(n.gpus for n in nodes) / gpu_s
    out, now_s = [], 0.0
    for job_id, per_worker, workers, duration_s, owner, cls, preemptible, same_node, ckpt_s in drafts:
        estimate_s = duration_s * rng.uniform(1.0, 2.0)  # users overestimate, rarely under
        job = Job(job_id, owner, round(now_s, 3), per_worker, workers, PRIORITY_CLASSES[cls], preemptible,
                  same_node, None, round(estimate_s, 3), ckpt_s)
        out.append(TraceJob(job, round(duration_s, 3)))
        now_s += rng.expovariate(rate_per_s)
    return out


def _per_gpu_budget(nodes: Sequence[Node]) -> tuple[float, float]:
    # Half of the thinnest node's CPUs and memory per GPU, so GPUs stay the bottleneck.
    gpu_nodes = [n for n in nodes if n.gpus]
    cpus = min(n.cpus / n.gpus for n in gpu_nodes) / 2
    mem = min(n.memory_gb / n.gpus for n in gpu_nodes) / 2
    return max(math.floor(cpus), 1), max(math.floor(mem), 1)


def _draft(rng: random.Random, i: int, runtimes: Sequence[float] | None, node_gpus: int, cpus_per_gpu: float,
           mem_per_gpu: float, owners: Sequence[tuple[str, float]]) -> tuple:
    gpus = _pick(rng, _SIZES)
    per_worker = min(gpus, node_gpus)
    if gpus >= 4 and per_worker == gpus and rng.random() < 0.3:
        per_worker = gpus // 2  # some jobs are written as 2-worker gangs
    workers = max(gpus // per_worker, 1)
    same_node = workers > 1 and per_worker * workers <= node_gpus and rng.random() < 0.5
    resources = Resources(cpus_per_gpu * per_worker, mem_per_gpu * per_worker, per_worker)
    if runtimes:
        duration_s = max(rng.choice(runtimes), 1.0)
    else:
        duration_s = min(max(rng.lognormvariate(_LOGNORMAL_MU, _LOGNORMAL_SIGMA), 1.0), _MAX_RUNTIME_S)
    return (f"job-{i:06d}", resources, workers, duration_s, _pick(rng, owners), _pick(rng, _CLASSES),
            rng.random() < 0.9, same_node, float(rng.randint(20, 120)))


def _pick(rng: random.Random, weighted: Sequence[tuple]) -> object:
    x = rng.random() * sum(w for _, w in weighted)
    for value, w in weighted:
        x -= w
        if x < 0:
            return value
    return weighted[-1][0]
