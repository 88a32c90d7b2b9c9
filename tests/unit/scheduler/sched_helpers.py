"""Literal snapshots for scheduler tests: nodes, jobs and running jobs in one line each."""

from __future__ import annotations

from llmos.scheduler import Job, Node, Resources, RunningJob, Slot

CPUS_PER_GPU = 4
GB_PER_GPU = 16


def node(name: str, gpus: int = 8, cpus: float | None = None, memory_gb: float | None = None) -> Node:
    return Node(name, cpus if cpus is not None else 8 * CPUS_PER_GPU,
                memory_gb if memory_gb is not None else 8 * GB_PER_GPU, gpus)


def job(job_id: str, gpus: int = 1, owner: str = "a", submit_s: float = 0.0, workers: int = 1,
        priority: int = 1, **kw) -> Job:
    per = Resources(CPUS_PER_GPU * max(gpus, 1), GB_PER_GPU * max(gpus, 1), gpus)
    return Job(job_id, owner, submit_s, per, workers, priority, **kw)


def running(j: Job, *where: tuple[str, tuple[int, ...]], start_s: float = 0.0, **kw) -> RunningJob:
    """`j` running with one (node, gpu indices) per worker."""
    slots = tuple(Slot(n, j.per_worker.cpus, j.per_worker.memory_gb, g) for n, g in where)
    return RunningJob(j, slots, start_s, **kw)


def gpus(first: int, count: int) -> tuple[int, ...]:
    return tuple(range(first, first + count))


def started(decision) -> dict[str, tuple]:
    """job id -> ((node, gpu indices) per worker) for each start."""
    return {s.job_id: tuple((slot.node, slot.gpu_indices) for slot in s.placement) for s in decision.starts}
