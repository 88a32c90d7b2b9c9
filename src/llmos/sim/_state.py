"""The state the simulator keeps as the daemon would: free capacity, running jobs, the queue.

Everything is updated incrementally, so building a snapshot costs nothing per job: the queue
stays grouped by (class, owner) in queue order, holdings are kept per (class, owner), free
capacity per node, and both free capacity and the running jobs indexed as a round reads them
(`Occupancy`). Every placement applied is checked: one that over-commits a node, splits a
same-node gang or gives a worker the wrong number of GPUs is a policy bug, raised at once.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import replace

from llmos.scheduler import (
    Claim,
    Cluster,
    Job,
    NodeFree,
    Occupancy,
    Owner,
    Resources,
    RunningJob,
    Slot,
    Snapshot,
    queue_order,
)
from llmos.sim._trace import TraceJob

__all__ = ["ClusterState"]

ZERO = Resources()


class ClusterState:
    def __init__(self, cluster: Cluster, owners: dict[str, Owner]) -> None:
        self.cluster = cluster
        self.owners = owners
        self.free: list[NodeFree] = cluster.idle()
        self.running: dict[str, RunningJob] = {}
        # Free capacity and the running jobs indexed as a round reads them (by end time, class,
        # node), kept up to date here so that a round need not index 1,000 nodes and their jobs.
        self.occupancy = Occupancy(cluster, self.free)
        self.queue: dict[tuple[int, str], list[Job]] = {}
        self.held: dict[tuple[int, str], Resources] = {}  # by (class, owner)
        self.queued: dict[tuple[int, str], Resources] = {}  # by (class, owner)
        self.busy_gpus = 0.0

    def snapshot(self, now_s: float, usage: dict[str, Resources], owed: dict[str, float] | None = None) -> Snapshot:
        return Snapshot(now_s, self.cluster, self.free, list(self.running.values()), self.queue, self.owners,
                        usage, self.held, self.queued, owed or {}, occupancy=self.occupancy)

    def enqueue(self, job: Job) -> None:
        key = (job.priority, job.owner)
        insort(self.queue.setdefault(key, []), job, key=queue_order)
        self.queued[key] = self.queued.get(key, ZERO) + job.total

    def dequeue(self, job: Job) -> Job:
        key = (job.priority, job.owner)
        group = self.queue[key]
        found = group.pop(bisect_left(group, queue_order(job), key=queue_order))
        # Exactly zero once the group is empty: float sums need not cancel to it.
        self.queued[key] = self.queued[key] - found.total if group else ZERO
        return found

    def start(self, job: Job, placement: tuple[Slot, ...], now_s: float) -> None:
        _check(job, placement)
        for slot in placement:
            i = self.cluster.index[slot.node]
            f = self.free[i]
            if (not set(f.gpu_indices).issuperset(slot.gpu_indices)
                    or f.cpus + 1e-6 < slot.cpus or f.memory_gb + 1e-6 < slot.memory_gb):
                raise RuntimeError(f"policy over-committed node {slot.node} with {job.job_id}")
            self._set_free(i, NodeFree(f.cpus - slot.cpus, f.memory_gb - slot.memory_gb,
                                       tuple(g for g in f.gpu_indices if g not in slot.gpu_indices)))
        rj = self.running[job.job_id] = RunningJob(job, placement, now_s)
        self.occupancy.add(rj)
        self._hold(job, +1)

    def stopping(self, job_id: str, until_s: float) -> RunningJob:
        """Mark a preempted job as checkpointing until `until_s`; it holds its resources till then."""
        rj = self.running[job_id]
        if rj.stopping or not rj.job.preemptible:
            raise RuntimeError(f"policy preempted {job_id}, which is stopping or not preemptible")
        self.running[job_id] = stopping = replace(rj, stopping=True, expected_end_s=until_s)
        self.occupancy.replace(rj, stopping)
        return rj

    def release(self, job_id: str) -> RunningJob:
        rj = self.running.pop(job_id)
        self.occupancy.remove(rj)
        for slot in rj.placement:
            i = self.cluster.index[slot.node]
            f = self.free[i]
            self._set_free(i, NodeFree(f.cpus + slot.cpus, f.memory_gb + slot.memory_gb,
                                       tuple(sorted(f.gpu_indices + slot.gpu_indices))))
        self._hold(rj.job, -1)
        return rj

    def _set_free(self, i: int, free: NodeFree) -> None:
        self.free[i] = free
        self.occupancy.set_free(i, free)

    def _hold(self, job: Job, sign: int) -> None:
        key = (job.priority, job.owner)
        self.held[key] = self.held.get(key, ZERO) + job.total.times(sign)
        self.busy_gpus += sign * job.total.gpus

    def allocated(self, claims: Sequence[Claim], trace: Mapping[str, TraceJob]) -> dict[tuple[int, str], float]:
        """GPUs allocated per (class, owner): what its jobs hold, except that capacity being freed
        for a claim counts for the claimant, not for the job checkpointing out of it."""
        out = {key: r.gpus for key, r in self.held.items()}
        claimed = {(slot.node, g) for c in claims for slot in c.placement for g in slot.gpu_indices}
        for rj in self.running.values():
            if rj.stopping:
                given = sum(1 for slot in rj.placement for g in slot.gpu_indices if (slot.node, g) in claimed)
                if given:
                    out[(rj.priority, rj.owner)] -= given
        for c in claims:
            job = trace[c.job_id].job
            key = (job.priority, job.owner)
            out[key] = out.get(key, 0.0) + job.total.gpus
        return out

    def owner_held(self, owner: str) -> Resources:
        total = ZERO
        for (_, o), r in self.held.items():
            if o == owner:
                total = total + r
        return total


def _check(job: Job, placement: tuple[Slot, ...]) -> None:
    if len(placement) != job.workers:
        raise RuntimeError(f"policy placed {len(placement)} workers of {job.job_id}, which has {job.workers}")
    if job.same_node and len({slot.node for slot in placement}) != 1:
        raise RuntimeError(f"policy split same-node job {job.job_id} across nodes")
    if any(len(slot.gpu_indices) != job.per_worker.gpus for slot in placement):
        raise RuntimeError(f"policy gave a worker of {job.job_id} the wrong number of GPUs")
