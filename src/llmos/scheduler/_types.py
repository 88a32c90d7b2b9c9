"""The snapshot's parts: nodes, queued jobs, running jobs and owners (plain frozen values)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmos.scheduler._errors import SchedulerError
from llmos.scheduler._resources import PRIORITY_CLASSES, Quota, Resources

__all__ = ["Job", "Node", "NodeFree", "Owner", "RunningJob", "Slot"]

NORMAL = PRIORITY_CLASSES["normal"]


@dataclass(frozen=True, slots=True)
class Node:
    """One machine's capacity. GPUs are numbered 0..gpus-1 on the node."""

    name: str
    cpus: float
    memory_gb: float
    gpus: int = 0
    gpu_type: str = ""

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.memory_gb < 0 or self.gpus < 0:
            raise SchedulerError(f"node {self.name!r}: capacities must be >= 0.")

    @property
    def capacity(self) -> Resources:
        return Resources(self.cpus, self.memory_gb, self.gpus)


@dataclass(frozen=True, slots=True)
class NodeFree:
    """What is free on one node now: CPUs, memory and the indices of idle GPUs."""

    cpus: float
    memory_gb: float
    gpu_indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """A request in the queue: `workers` identical workers that start together or not at all.

    `submit_s` is the job's place in the queue: a preempted job is requeued with its original
    value so it keeps its place. `runtime_estimate_s` is the remaining run time the user expects
    (None: unknown, so backfill treats the job as if it never ends).
    Aging counts the time a job has waited, not the time since it was submitted: `queued_s` is
    when it entered the queue this time (None: at `submit_s`) and `waited_s` what it waited in
    the queue before that (a requeued job's earlier waits; the time it ran is not waiting).
    """

    job_id: str
    owner: str
    submit_s: float
    per_worker: Resources
    workers: int = 1
    priority: int = NORMAL
    preemptible: bool = True
    same_node: bool = False
    gpu_type: str | None = None
    runtime_estimate_s: float | None = None
    checkpoint_s: float = 0.0
    queued_s: float | None = None
    waited_s: float = 0.0
    total: Resources = field(init=False, repr=False, compare=False)
    # What decides whether any placement can hold it (the key `can_ever_fit` remembers).
    shape: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SchedulerError(f"job {self.job_id!r}: workers must be >= 1, got {self.workers}.")
        w = self.per_worker
        if w.cpus < 0 or w.memory_gb < 0 or w.gpus < 0 or w.gpus != int(w.gpus):
            raise SchedulerError(f"job {self.job_id!r}: per-worker resources must be >= 0 "
                                 "and GPUs a whole number.")
        if self.waited_s < 0 or (self.queued_s is not None and self.queued_s < self.submit_s):
            raise SchedulerError(f"job {self.job_id!r}: waited_s must be >= 0 and queued_s >= submit_s.")
        if self.priority not in PRIORITY_CLASSES.values():
            raise SchedulerError(f"job {self.job_id!r}: unknown priority rank {self.priority}.")
        # Cached because the policy reads it in its innermost loops.
        object.__setattr__(self, "total", w.times(self.workers))
        object.__setattr__(self, "shape", (w.cpus, w.memory_gb, w.gpus, self.workers, self.same_node, self.gpu_type))

    def waited_by(self, now_s: float) -> float:
        """Seconds in the queue by `now_s`: earlier stays plus this one (for aging; not run time)."""
        return self.waited_s + now_s - (self.submit_s if self.queued_s is None else self.queued_s)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one worker runs: its node, CPU count, memory and exact GPU indices."""

    node: str
    cpus: float
    memory_gb: float
    gpu_indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding resources. `stopping`: a preemption was asked and it is checkpointing.

    `expected_end_s` is when its resources are expected back (start + estimate, or the end of
    its checkpoint when stopping); None means unknown, which backfill treats as never.
    `lost_work` is what preempting it costs: the GPU-seconds its GPUs spend writing the
    checkpoint, with CPU-seconds counted at 1/1000 so CPU-only jobs still rank by size.
    """

    job: Job
    placement: tuple[Slot, ...]
    start_s: float
    stopping: bool = False
    expected_end_s: float | None = None
    # Cached sort keys: a round ranks thousands of running jobs by these.
    end_s: float = field(init=False, repr=False, compare=False)
    lost_work: float = field(init=False, repr=False, compare=False)
    movable: bool = field(init=False, repr=False, compare=False)  # preemptible and not stopping
    priority: int = field(init=False, repr=False, compare=False)
    owner: str = field(init=False, repr=False, compare=False)
    node: str | None = field(init=False, repr=False, compare=False)  # None: a gang across nodes

    def __post_init__(self) -> None:
        if len(self.placement) != self.job.workers:
            raise SchedulerError(f"running job {self.job.job_id!r}: {len(self.placement)} slots "
                                 f"for {self.job.workers} workers.")
        if self.expected_end_s is None and self.job.runtime_estimate_s is not None:
            object.__setattr__(self, "expected_end_s", self.start_s + self.job.runtime_estimate_s)
        end = self.expected_end_s
        object.__setattr__(self, "end_s", math.inf if end is None else end)
        t = self.job.total
        lost = self.job.checkpoint_s * (t.gpus + 1e-3 * t.cpus)
        object.__setattr__(self, "lost_work", lost)
        object.__setattr__(self, "movable", self.job.preemptible and not self.stopping)
        object.__setattr__(self, "priority", self.job.priority)
        object.__setattr__(self, "owner", self.job.owner)
        nodes = {slot.node for slot in self.placement}
        object.__setattr__(self, "node", nodes.pop() if len(nodes) == 1 else None)


@dataclass(frozen=True, slots=True)
class Owner:
    """A user or project: its fair-share weight, guaranteed share and hard cap."""

    name: str
    weight: float = 1.0
    guarantee: Quota = field(default_factory=Quota)
    cap: Quota = field(default_factory=Quota)

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise SchedulerError(f"owner {self.name!r}: weight must be > 0, got {self.weight}.")
