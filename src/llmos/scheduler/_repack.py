"""Repacking: make room for a blocked job when the cluster has enough idle GPUs, just not on one node.

Best-fit placement keeps fragmentation low but cannot avoid it: after a while every node has a
few idle GPUs and no 8-GPU job fits anywhere. Then the policy may move small jobs: preempt a set
on one node so the blocked job fits there, on the condition that every moved job fits right
away in the idle capacity elsewhere (jobs the blocked one may preempt anyway, by class or
reclaim, need no landing spot). Moved jobs checkpoint, keep their place in the queue and
restart, so a move costs only their checkpoint time; nobody loses share. That is why a move may
touch a job of any class, unlike a preemption.

On a full cluster there is no idle capacity to land on: a moved job may then land where the
blocked job preempts others it may preempt anyway (cheapest first, within the same budgets),
on other nodes. A higher-class job, or one of the blocked job's own owner, on every node would
otherwise keep an owner below its share from ever running a whole-node job.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from itertools import islice
from operator import itemgetter

from llmos.scheduler._free import FreeView
from llmos.scheduler._placement import Placement, commit, place
from llmos.scheduler._preempt import plan_preemption
from llmos.scheduler._types import Job, RunningJob
from llmos.scheduler._victims import Victims

__all__ = ["REPACK_NODES", "plan_repack"]

REPACK_NODES = 16  # nodes tried, those with most idle GPUs first: bounds a round on a large cluster
_MOVERS_PER_NODE = 6  # at most 2^6 subsets per node
_TRIES = 4  # cheapest options checked in full (each check copies the free view)
_EVICTING_TRIES = 2  # of those, tried again with evictions to land the moved jobs

_COST_COUNT_NODE = itemgetter(0, 1, 2)

Moves = list[tuple[RunningJob, Placement | None]]  # None: evicted (preempted), not moved


def plan_repack(job: Job, future: FreeView, by_node: dict[int, list[RunningJob]],
                may_move: Callable[[RunningJob], bool], evictable: Victims, index: dict[str, int],
                budget: float) -> tuple[Placement, Moves] | None:
    """(placement for `job`, [(job to move, where it lands)]) at the least lost work, or None.

    `by_node` lists, for the nodes to try, the preemptible jobs running only there, cheapest
    first. Jobs in `evictable` may be preempted outright (the job's owner may reclaim from
    them, within its budgets) and need no landing spot. Moves that lose more than `budget` (GPU-seconds) are not
    worth making.
    """
    if job.total.gpus <= 0:
        return None
    options = []
    for i in by_node:
        local = list(islice(filter(may_move, by_node[i]), _MOVERS_PER_NODE))
        if local:
            options.extend(_freeing_sets(local, i, len(future.gpus[i]), job.total.gpus, budget))
    # The cheapest: equal to sorting them all and taking the first (ties keep their order).
    cheapest = [(cost, i, _members(local, mask))
                for cost, _, i, local, mask in heapq.nsmallest(_TRIES, options, key=_COST_COUNT_NODE)]
    for _, i, moved in cheapest:
        plan = _try(job, future, future.nodes[i].name, moved, evictable, index, None)
        if plan is not None:
            return plan
    # Nowhere idle to land: let the moved jobs land where the blocked job may preempt anyway,
    # for the cheapest options only (each landing plans a preemption).
    for cost, i, moved in cheapest[:_EVICTING_TRIES]:
        plan = _try(job, future, future.nodes[i].name, moved, evictable, index, budget - cost)
        if plan is not None:
            return plan
    return None


def _freeing_sets(local: list[RunningJob], i: int, idle_gpus: int, need_gpus: float,
                  budget: float) -> list[tuple[float, int, int, list[RunningJob], int]]:
    """(cost, count, node, `local`, mask) for each subset of `local` (as a bit mask, in mask
    order) whose moving leaves node `i` `need_gpus` idle GPUs at a cost within `budget`.

    Each subset's sums extend those of the subset without its last member, so a subset costs
    one addition; sums run in member order, exactly as summing each subset afresh.
    """
    if idle_gpus + sum(rj.job.total.gpus for rj in local) < need_gpus:
        return []  # not even moving them all would do
    size = 1 << len(local)
    gpus = [0.0] * size
    cost = [0.0] * size
    count = [0] * size
    out = []
    for mask in range(1, size):
        last = mask.bit_length() - 1
        rest = mask ^ (1 << last)
        rj = local[last]
        gpus[mask] = g = gpus[rest] + rj.job.total.gpus
        cost[mask] = c = cost[rest] + rj.lost_work
        count[mask] = n = count[rest] + 1
        if idle_gpus + g >= need_gpus and c <= budget:
            out.append((c, n, i, local, mask))
    return out


def _members(local: list[RunningJob], mask: int) -> list[RunningJob]:
    return [rj for k, rj in enumerate(local) if mask >> k & 1]


def _try(job: Job, future: FreeView, node: str, moved: list[RunningJob], evictable: Victims,
         index: dict[str, int], budget: float | None) -> tuple[Placement, Moves] | None:
    """`job` on `node` once `moved` are out of the way; with a `budget` (lost work left), moved
    jobs that find no idle room may land where `evictable` jobs are evicted for them."""
    scratch = future.clone()
    for rj in moved:
        for slot in rj.placement:
            scratch.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
    placement = place(scratch, job)
    if placement is None or placement[0].node != node:
        return None
    commit(scratch, placement, index)
    evicted: list[RunningJob] = []
    for rj in moved:
        if rj.job.job_id in evictable.why and evictable.affordable([*evicted, rj]):
            evicted.append(rj)
    landing = [rj for rj in moved if all(rj is not e for e in evicted)]
    touched = {rj.job.job_id for rj in moved}
    landed: Moves = []
    for rj in sorted(landing, key=lambda rj: -rj.job.total.gpus):  # biggest first packs best
        target = place(scratch, rj.job)
        if target is None and budget is not None:
            budget -= _make_room(rj.job, scratch, evictable, evicted, touched, index, budget)
            target = place(scratch, rj.job) if budget >= 0 else None
        if target is None:
            return None
        commit(scratch, target, index)
        landed.append((rj, target))
    return placement, [(rj, None) for rj in evicted] + landed


def _make_room(mover: Job, scratch: FreeView, evictable: Victims, evicted: list[RunningJob], touched: set[str],
               index: dict[str, int], budget: float) -> float:
    """Evict the cheapest set of jobs the blocked job may preempt anyway (within what its budgets
    have left after `evicted`) that lets `mover` fit on `scratch`; add them to `evicted`, free
    them on `scratch` and return what they cost (inf: no such set)."""
    plan = plan_preemption(mover, scratch, evictable.left_after(evicted, touched), index)
    if plan is None or not plan[1]:
        return math.inf
    cost = sum(rj.lost_work for rj in plan[1])
    if cost > budget:
        return math.inf
    for rj in plan[1]:
        touched.add(rj.job.job_id)
        evicted.append(rj)
        for slot in rj.placement:
            scratch.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
    return cost
