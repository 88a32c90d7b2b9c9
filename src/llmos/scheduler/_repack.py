"""Repacking: make room for a blocked job when the cluster has enough idle GPUs, just not on one node.

Best-fit placement keeps fragmentation low but cannot avoid it: after a while every node has a
few idle GPUs and no 8-GPU job fits anywhere. Then the policy may move small jobs: preempt a set
on one node so the blocked job fits there, on the condition that every moved job fits right
away in the idle capacity elsewhere. Moved jobs checkpoint, keep their place in the queue and
restart, so a move costs only their checkpoint time; nobody loses share.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmos.scheduler._free import FreeView
from llmos.scheduler._placement import Placement, commit, place
from llmos.scheduler._preempt import lost_work
from llmos.scheduler._resources import Resources
from llmos.scheduler._types import Job, RunningJob

__all__ = ["plan_repack"]

_NODES_TRIED = 32  # bounds a round on a large cluster; the fullest candidates are tried first
_MOVERS_PER_NODE = 6  # at most 2^6 subsets per node
_TRIES = 8  # cheapest options checked in full (each check copies the free view)


def plan_repack(job: Job, future: FreeView, movable: Sequence[RunningJob], index: dict[str, int],
                total: Resources, respect_holds: bool
                ) -> tuple[Placement, list[tuple[RunningJob, Placement]]] | None:
    """(placement for `job`, [(job to move, where it will fit)]) at the least lost work, or None."""
    if job.workers > 1 and not job.same_node:
        return None  # a gang over several nodes is placed by the nodes it spans, not by repacking one
    if job.total.gpus > future.free_gpus or not movable:
        return None
    by_node: dict[int, list[RunningJob]] = {}
    for rj in movable:
        nodes = {s.node for s in rj.placement}
        if len(nodes) == 1:  # moving a multi-node gang to free one node is rarely worth it
            by_node.setdefault(index[next(iter(nodes))], []).append(rj)
    options = []
    for i in sorted(by_node, key=lambda i: -len(future.gpus[i]))[:_NODES_TRIED]:
        local = sorted(by_node[i], key=lambda rj: lost_work(rj, total))[:_MOVERS_PER_NODE]
        for mask in range(1, 1 << len(local)):
            moved = [local[k] for k in range(len(local)) if mask >> k & 1]
            gpus = len(future.gpus[i]) + sum(len(s.gpu_indices) for rj in moved for s in rj.placement)
            if gpus >= job.total.gpus:
                options.append((sum(lost_work(rj, total) for rj in moved), len(moved), i, moved))
    options.sort(key=lambda o: o[:3])
    for _, _, i, moved in options[:_TRIES]:
        plan = _try(job, future, future.nodes[i].name, moved, index, respect_holds)
        if plan is not None:
            return plan
    return None


def _try(job: Job, future: FreeView, node: str, moved: list[RunningJob], index: dict[str, int],
         respect_holds: bool) -> tuple[Placement, list[tuple[RunningJob, Placement]]] | None:
    scratch = future.clone()
    for rj in moved:
        for slot in rj.placement:
            scratch.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
    placement = place(scratch, job, respect_holds)
    if placement is None or placement[0].node != node:
        return None
    commit(scratch, placement, index)
    targets = []
    for rj in sorted(moved, key=lambda rj: -rj.job.total.gpus):  # biggest first packs best
        target = place(scratch, rj.job, respect_holds)
        if target is None:
            return None
        commit(scratch, target, index)
        targets.append((rj, target))
    return placement, targets
