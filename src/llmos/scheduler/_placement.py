"""Gang placement: all of a job's workers or none, on as few nodes as possible, packed tight.

A job that fits on one node goes to the fullest node that still takes it (best fit), which
keeps whole nodes free for 8-GPU jobs. A job that needs several nodes takes the emptiest
nodes first (fewest nodes) and finishes on the best-fitting one.
"""

from __future__ import annotations

from llmos.scheduler._free import FreeView
from llmos.scheduler._occupancy import Occupancy
from llmos.scheduler._resources import EPS
from llmos.scheduler._snapshot import Cluster
from llmos.scheduler._types import Job, Slot

__all__ = ["can_ever_fit", "commit", "place"]

Placement = tuple[Slot, ...]
_UNKNOWN = object()  # a shape not yet asked about


def place(view: FreeView, job: Job, respect_holds: bool = False) -> Placement | None:
    """Where every worker of `job` would go on `view` now, or None; `view` is not changed."""
    total = job.total
    if total.gpus > view.free_gpus or total.cpus > view.free_cpus + EPS or total.memory_gb > view.free_mem + EPS:
        return None
    shape = (int(job.per_worker.gpus), job.per_worker.cpus, job.per_worker.memory_gb, job.gpu_type, respect_holds)
    if job.workers == 1 or job.same_node:
        i = _best_single(view, shape, job.workers, ())
        return None if i is None else _slots(view, job, [(i, job.workers)])
    picks: list[tuple[int, int]] = []
    used: set[int] = set()
    remaining = job.workers
    while remaining:
        i = _best_single(view, shape, remaining, used)
        if i is not None:
            picks.append((i, remaining))
            break
        roomiest = _roomiest(view, shape, used)
        if roomiest is None:
            return None
        i, k = roomiest
        k = min(k, remaining)
        picks.append((i, k))
        used.add(i)
        remaining -= k
    return _slots(view, job, picks)


def commit(view: FreeView, placement: Placement, index: dict[str, int]) -> None:
    """Take `placement` out of `view` (a start, or a claim on capacity being freed)."""
    for slot in placement:
        view.take(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)


def can_ever_fit(cluster: Cluster, job: Job) -> str | None:
    """None when `job` fits the idle cluster; otherwise why it never will (remembered per shape)."""
    reason = cluster.fit_memo.get(job.shape, _UNKNOWN)
    if reason is _UNKNOWN:
        idle = FreeView.of(Occupancy(cluster))
        reason = cluster.fit_memo[job.shape] = None if place(idle, job) is not None else _why_not(cluster, job)
    return reason


def _why_not(cluster: Cluster, job: Job) -> str:
    t = job.total
    need = f"{job.workers} worker(s) x {job.per_worker.gpus:g} GPU, {job.per_worker.cpus:g} CPU, " \
           f"{job.per_worker.memory_gb:g} GB"
    if job.gpu_type and all(n.gpu_type != job.gpu_type for n in cluster.nodes):
        return f"needs GPU type {job.gpu_type!r}, which no node has"
    if not t.fits_in(cluster.total):
        return f"needs {need} = {t.gpus:g} GPUs, {t.cpus:g} CPUs, {t.memory_gb:g} GB; the whole cluster has " \
               f"{cluster.total.gpus:g} GPUs, {cluster.total.cpus:g} CPUs, {cluster.total.memory_gb:g} GB"
    where = "one node" if job.same_node or job.workers == 1 else "any set of nodes"
    return f"needs {need}, which {where} cannot hold (largest node: {cluster.max_gpus} GPUs)"


def _best_single(view: FreeView, shape: tuple, workers: int, used) -> int | None:
    """The node with the fewest idle GPUs that still hosts `workers` workers."""
    gpus, cpus, mem, gpu_type, holds = shape
    buckets = view.buckets
    for k in range(gpus * workers, len(buckets)):
        for i in buckets[k]:
            if i not in used and view.hostable(i, gpus, cpus, mem, gpu_type, holds) >= workers:
                return i
    return None


def _roomiest(view: FreeView, shape: tuple, used: set[int]) -> tuple[int, int] | None:
    """A node with the most idle GPUs (or, for CPU-only workers, the fewest) that hosts any worker."""
    gpus, cpus, mem, gpu_type, holds = shape
    buckets = view.buckets
    order = range(len(buckets) - 1, gpus - 1, -1) if gpus else range(len(buckets))
    for k in order:
        for i in buckets[k]:
            if i not in used:
                n = view.hostable(i, gpus, cpus, mem, gpu_type, holds)
                if n >= 1:
                    return i, n
    return None


def _slots(view: FreeView, job: Job, picks: list[tuple[int, int]]) -> Placement:
    w = job.per_worker
    g = int(w.gpus)
    slots = []
    for i, count in picks:
        name, free = view.nodes[i].name, view.gpus[i]
        slots.extend(Slot(name, w.cpus, w.memory_gb, free[k * g:(k + 1) * g]) for k in range(count))
    return tuple(slots)
