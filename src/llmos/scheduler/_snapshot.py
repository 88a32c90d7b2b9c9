"""The snapshot a scheduling round reads: cluster, free capacity, running jobs, queue, owners.

The queue arrives grouped by (priority class, owner), each group in queue order, because a
round must not touch all of a 10,000-job queue: the policy merges the group heads lazily.
A caller that holds a flat list of jobs uses `Snapshot.build` (or `group_queue`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmos.scheduler._errors import SchedulerError
from llmos.scheduler._resources import EPS, Resources
from llmos.scheduler._types import Job, Node, NodeFree, Owner, RunningJob

if TYPE_CHECKING:  # it indexes a `Cluster`, defined here
    from llmos.scheduler._occupancy import Occupancy

__all__ = ["Cluster", "QueueKey", "Snapshot", "free_capacity", "group_queue", "queue_order", "queued_by_group"]

QueueKey = tuple[int, str]  # (priority class rank, owner)


class Cluster:
    """The static inventory, indexed once: nodes by name, totals, and the largest node."""

    __slots__ = ("fit_memo", "index", "max_gpus", "nodes", "total")

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.index: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            if node.name in self.index:
                raise SchedulerError(f"node {node.name!r} is listed twice.", hint="Give each node a unique name.")
            self.index[node.name] = i
        self.total = Resources(sum(n.cpus for n in self.nodes), sum(n.memory_gb for n in self.nodes),
                               sum(n.gpus for n in self.nodes))
        self.max_gpus = max((n.gpus for n in self.nodes), default=0)
        # Whether a job shape can ever be placed is a property of the inventory alone; the
        # policy asks it for every blocked job, so the answer is remembered per shape.
        self.fit_memo: dict[tuple, str | None] = {}

    def idle(self) -> list[NodeFree]:
        return [NodeFree(n.cpus, n.memory_gb, tuple(range(n.gpus))) for n in self.nodes]


def queue_order(job: Job) -> tuple[float, str]:
    return (job.submit_s, job.job_id)


def group_queue(jobs: Iterable[Job]) -> dict[QueueKey, list[Job]]:
    """Group queued jobs by (class, owner), each group sorted by submit time (queue order)."""
    groups: dict[QueueKey, list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.priority, job.owner), []).append(job)
    for group in groups.values():
        group.sort(key=queue_order)
    return groups


def queued_by_group(queue: Mapping[QueueKey, Sequence[Job]]) -> dict[QueueKey, Resources]:
    """What each (class, owner) has waiting, summed over its queued jobs."""
    out: dict[QueueKey, Resources] = {}
    for key, jobs in queue.items():
        if jobs:
            acc = [0.0, 0.0, 0.0]
            for j in jobs:
                acc[0] += j.total.cpus
                acc[1] += j.total.memory_gb
                acc[2] += j.total.gpus
            out[key] = Resources(*acc)
    return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one round may look at.

    `usage` is each owner's decayed usage (see `decay_usage`). `held` is what each (class, owner)
    holds now (running and stopping jobs); None derives it from `running`. `queued` is what each
    (class, owner) has waiting; None derives it from `queue`. A caller that tracks them
    incrementally (the simulator) passes them so that a round need not sum thousands of jobs.
    `owed` is each owner's decayed shortfall below its entitlement (see `accrue_owed`); empty
    means nothing is owed to anyone. `occupancy` indexes `free` and `running` (and must agree
    with them) in the orders a round reads them, for a caller that keeps it up to date across
    rounds (the simulator): a round then touches neither every node nor every running job;
    None: the round indexes them itself (see `Occupancy`).
    """

    now_s: float
    cluster: Cluster
    free: Sequence[NodeFree]
    running: Sequence[RunningJob]
    queue: Mapping[QueueKey, Sequence[Job]]
    owners: Mapping[str, Owner] = field(default_factory=dict)
    usage: Mapping[str, Resources] = field(default_factory=dict)
    held: Mapping[QueueKey, Resources] | None = None
    queued: Mapping[QueueKey, Resources] | None = None
    owed: Mapping[str, float] = field(default_factory=dict)
    occupancy: Occupancy | None = None

    @staticmethod
    def build(now_s: float, nodes: Iterable[Node] | Cluster, running: Iterable[RunningJob] = (),
              queued: Iterable[Job] = (), owners: Iterable[Owner] = (),
              usage: Mapping[str, Resources] | None = None, owed: Mapping[str, float] | None = None) -> Snapshot:
        """Make a snapshot from flat lists, deriving free capacity from the running placements."""
        cluster = nodes if isinstance(nodes, Cluster) else Cluster(nodes)
        running = tuple(running)
        return Snapshot(now_s, cluster, free_capacity(cluster, running), running, group_queue(queued),
                        {o.name: o for o in owners}, dict(usage or {}), owed=dict(owed or {}))


def free_capacity(cluster: Cluster, running: Iterable[RunningJob]) -> list[NodeFree]:
    """Capacity minus what running jobs hold; raise if they over-commit a node."""
    cpus = [n.cpus for n in cluster.nodes]
    mem = [n.memory_gb for n in cluster.nodes]
    gpus = [set(range(n.gpus)) for n in cluster.nodes]
    for rj in running:
        for slot in rj.placement:
            i = cluster.index.get(slot.node)
            if i is None:
                raise SchedulerError(f"running job {rj.job.job_id!r} is placed on unknown node {slot.node!r}.")
            cpus[i] -= slot.cpus
            mem[i] -= slot.memory_gb
            for g in slot.gpu_indices:
                if g not in gpus[i]:
                    raise SchedulerError(f"running job {rj.job.job_id!r}: GPU {g} on {slot.node!r} is "
                                         "not on the node or already held by another job.")
                gpus[i].discard(g)
            if cpus[i] < -EPS or mem[i] < -EPS:
                raise SchedulerError(f"running jobs over-commit node {slot.node!r}.")
    return [NodeFree(c, m, tuple(sorted(g))) for c, m, g in zip(cpus, mem, gpus, strict=True)]
