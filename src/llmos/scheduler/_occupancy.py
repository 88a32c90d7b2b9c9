"""Who occupies what: free capacity and running jobs, indexed in the orders a round reads them.

Besides the snapshot's flat lists, a round reads free capacity as per-node arrays with the
nodes grouped by idle GPU count (`_free`), and the running jobs by expected end (the backfill
shadow), the movable ones per class cheapest first (preemption) and per node (repacking), and
the stopping ones (capacity being freed). Deriving these is a pass over every node and every
running job, which on a 1,000-node cluster costs more than all the rest of a round. So a
caller that tracks the cluster across rounds (the simulator) keeps an `Occupancy` up to date
as jobs start and stop and passes it with the snapshot; for any other the round builds one
(`Occupancy.of`).

Equal keys keep the order the jobs started in (the order of `Snapshot.running`), so a kept and
a built occupancy lead to the same decisions.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

from llmos.scheduler._snapshot import Cluster
from llmos.scheduler._types import NodeFree, RunningJob

__all__ = ["Occupancy"]


class Occupancy:
    """Free capacity per node and the running jobs, indexed (see the module docstring).

    `idle[k]` lists, in ascending order, the nodes with exactly `k` idle GPUs. `by_end` is the
    running jobs by (`end_s`, job id), kept only by a caller that tracks them (None: the
    round ranks them itself). `movable[p]` is class `p`'s movable jobs (preemptible, not
    stopping), cheapest to preempt first; `on_node` the movable jobs that run on one node only,
    by node name, cheapest to move first (then lower classes first); `stopping` the jobs
    checkpointing.
    """

    __slots__ = ("_next", "_seq", "by_end", "cluster", "cpus", "gpus", "idle", "mem", "movable", "on_node",
                 "stopping")

    def __init__(self, cluster: Cluster, free: Sequence[NodeFree] | None = None, keep_end_order: bool = True) -> None:
        """An occupancy with no running jobs and `free` capacity (None: the idle cluster)."""
        self.cluster = cluster
        free = cluster.idle() if free is None else free
        self.cpus = [f.cpus for f in free]
        self.mem = [f.memory_gb for f in free]
        self.gpus = [f.gpu_indices for f in free]
        self.idle: list[list[int]] = [[] for _ in range(cluster.max_gpus + 1)]
        for i, g in enumerate(self.gpus):
            self.idle[len(g)].append(i)
        self.by_end: list[RunningJob] | None = [] if keep_end_order else None
        self.movable: dict[int, list[RunningJob]] = {}
        self.on_node: dict[str, list[RunningJob]] = {}
        self.stopping: dict[str, RunningJob] = {}
        self._seq: dict[str, int] = {}  # job id -> when it started, relative to the others
        self._next = 0

    @staticmethod
    def of(cluster: Cluster, free: Sequence[NodeFree], running: Iterable[RunningJob]) -> Occupancy:
        """Index a snapshot's free capacity and running jobs (in one pass, for one round)."""
        occ = Occupancy(cluster, free, keep_end_order=False)
        by_class: dict[int, list[RunningJob]] = {}
        for rj in running:
            occ._seq[rj.job.job_id] = occ._next
            occ._next += 1
            if rj.movable:
                by_class.setdefault(rj.priority, []).append(rj)
                if rj.node is not None:
                    occ.on_node.setdefault(rj.node, []).append(rj)
            elif rj.stopping:
                occ.stopping[rj.job.job_id] = rj
        for p, jobs in by_class.items():
            jobs.sort(key=_lost_work)  # stable: equal costs stay in start order
            occ.movable[p] = jobs
        for jobs in occ.on_node.values():
            jobs.sort(key=_move_cost)
        return occ

    def set_free(self, i: int, free: NodeFree) -> None:
        """Node `i` now has `free` capacity."""
        before, after = len(self.gpus[i]), len(free.gpu_indices)
        self.cpus[i], self.mem[i], self.gpus[i] = free.cpus, free.memory_gb, free.gpu_indices
        if before != after:
            nodes = self.idle[before]
            del nodes[bisect_left(nodes, i)]
            insort(self.idle[after], i)

    def add(self, rj: RunningJob) -> None:
        """`rj` started (after every job already here)."""
        self._seq[rj.job.job_id] = self._next
        self._next += 1
        self._list(rj)

    def replace(self, old: RunningJob, new: RunningJob) -> None:
        """The same job changed (it is stopping now); it keeps its place among equals."""
        self._unlist(old)
        self._list(new)

    def remove(self, rj: RunningJob) -> None:
        """`rj` released its resources."""
        self._unlist(rj)
        del self._seq[rj.job.job_id]

    def stopping_in_start_order(self) -> list[RunningJob]:
        return sorted(self.stopping.values(), key=self._started)

    def _started(self, rj: RunningJob) -> int:
        return self._seq[rj.job.job_id]

    def _cost(self, rj: RunningJob) -> tuple[float, int]:
        return rj.lost_work, self._seq[rj.job.job_id]

    def _move_order(self, rj: RunningJob) -> tuple[float, int, int]:
        return rj.lost_work, rj.priority, self._seq[rj.job.job_id]

    def _list(self, rj: RunningJob) -> None:
        if self.by_end is not None:
            insort(self.by_end, rj, key=_end_order)
        if rj.movable:
            insort(self.movable.setdefault(rj.priority, []), rj, key=self._cost)
            if rj.node is not None:
                insort(self.on_node.setdefault(rj.node, []), rj, key=self._move_order)
        elif rj.stopping:
            self.stopping[rj.job.job_id] = rj

    def _unlist(self, rj: RunningJob) -> None:
        if self.by_end is not None:
            _remove(self.by_end, rj, _end_order)
        if rj.movable:
            _remove(self.movable[rj.priority], rj, self._cost)
            if rj.node is not None:
                _remove(self.on_node[rj.node], rj, self._move_order)
        elif rj.stopping:
            del self.stopping[rj.job.job_id]


def _remove(ordered: list[RunningJob], rj: RunningJob, key) -> None:
    i = bisect_left(ordered, key(rj), key=key)
    if i == len(ordered) or ordered[i] is not rj:
        raise RuntimeError(f"running job {rj.job.job_id} is missing from the occupancy's index")
    del ordered[i]


def _end_order(rj: RunningJob) -> tuple[float, str]:
    return rj.end_s, rj.job.job_id


def _lost_work(rj: RunningJob) -> float:
    return rj.lost_work


def _move_cost(rj: RunningJob) -> tuple[float, int]:
    return rj.lost_work, rj.priority
