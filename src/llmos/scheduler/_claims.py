"""Claims: a blocked job takes capacity that is being freed, preempting or repacking if needed.

A claim is a placement on "future" capacity: what is free now plus what checkpointing jobs are
about to release. The round keeps that view in step with every start and claim instead of
rebuilding it, and bounds how many claims it plans, as each plan scans the running jobs.

Who may be preempted is decided in `_victims`. A blocked head job that needs one node may
instead move small jobs out of its way (`_repack`), into idle GPUs elsewhere or, on a full
cluster, into room it makes by preempting jobs it may preempt anyway.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from llmos.scheduler._config import PolicyConfig
from llmos.scheduler._decision import Preempt
from llmos.scheduler._free import FreeView
from llmos.scheduler._occupancy import Occupancy
from llmos.scheduler._pending import Pending
from llmos.scheduler._placement import Placement, commit, place
from llmos.scheduler._preempt import plan_preemption
from llmos.scheduler._quota import Quotas
from llmos.scheduler._repack import REPACK_NODES, plan_repack
from llmos.scheduler._snapshot import Snapshot
from llmos.scheduler._types import Job, RunningJob
from llmos.scheduler._victims import Movable, Victims, choose_victims

__all__ = ["Claims"]

# A round plans a few preemptions (see `_victims` for how many candidates each weighs), so a
# round on a 1,000-node cluster stays near a millisecond; later rounds carry on.
_PLANS_PER_ROUND = 2


class Claims:
    def __init__(self, snap: Snapshot, occupancy: Occupancy, config: PolicyConfig, view: FreeView, quotas: Quotas,
                 owners: Collection[str]) -> None:
        self.snap = snap
        self.occupancy = occupancy
        self.owners = owners  # those holding resources; empty when no rule tells owners apart
        self.config = config
        self.view = view
        self.quotas = quotas
        self.index = snap.cluster.index
        self.preempted: set[str] = set()
        self.preempts: list[Preempt] = []
        self.plans_left = _PLANS_PER_ROUND
        self._settled_s = snap.now_s - config.settle_s
        self._failed: dict[tuple[str, int], float] = {}  # (owner, class) -> GPUs a plan failed to find
        self._pending: Pending | None = None  # being freed by checkpointing jobs, unclaimed
        self._future: FreeView | None = None  # view + pending, kept in step
        self._by_group: Movable | None = None
        self._victims: tuple[tuple, Victims] | None = None  # the last answer, and what it depended on

    def claim(self, job: Job, respect_holds: bool) -> Placement | None:
        """Claim capacity for `job`, preempting if allowed; None if it cannot."""
        future = self.future()
        placement = place(future, job, respect_holds)
        if placement is None:
            failed = self._failed.get((job.owner, job.priority), math.inf)
            if self.plans_left <= 0 or job.total.gpus >= failed:
                return None  # a bigger job of the same owner and class would fail the same way
            self.plans_left -= 1
            placement = self._plan(job, future, respect_holds)
            if placement is None:
                self._failed[(job.owner, job.priority)] = job.total.gpus
                return None
        self._take(placement)
        return placement

    def _plan(self, job: Job, future: FreeView, respect_holds: bool) -> Placement | None:
        victims = self._victims_of(job)
        plan = plan_preemption(job, future, victims, self.index, respect_holds)
        if plan is None:
            return None
        for rj in plan[1]:
            self._preempt(rj, _reason(victims.why[rj.job.job_id], job))
        return plan[0]

    def repack(self, job: Job, budget: float) -> Placement | None:
        """Move small jobs out of `job`'s way if that costs at most `budget` lost work; claim the room."""
        future = self.future()
        if not (job.workers == 1 or job.same_node) or future.largest_gap() >= job.total.gpus:
            return None  # a gang over several nodes is not helped by emptying one; or nothing to gain
        victims = self._victims_of(job)

        # A move costs the moved job only its checkpoint and it lands at once, so jobs of any
        # class may move: a scattered 1-GPU high-class job must not pin a whole node. A job that
        # just (re)started stays put, or it could be moved back and forth; one the blocked job
        # may preempt anyway was already checked against `settle_s` where that applies.
        def may_move(rj: RunningJob) -> bool:  # most jobs fail the first test: it goes first
            return ((rj.start_s <= self._settled_s or rj.job.job_id in victims.why)
                    and rj.job.job_id not in self.preempted)

        plan = plan_repack(job, future, self._movers(future), may_move, victims, self.index, budget)
        if plan is None:
            return None
        for rj, target in plan[1]:
            if target is None:
                self._preempt(rj, _reason(victims.why[rj.job.job_id], job))
            else:
                self._preempt(rj, f"repack: moving to make room for {job.job_id}")
                self._take(target)  # keep the moved job's landing spot free this round
        self._take(plan[0])
        return plan[0]

    def started(self, placement: Placement) -> None:
        """A job started on free capacity: the future view loses it too."""
        if self._future is not None:
            commit(self._future, placement, self.index)

    def future(self) -> FreeView:
        if self._future is None:
            future = self.view.clone()
            for i, (cpus, mem, gpus) in self.pending().nodes.items():
                future.give(i, cpus, mem, tuple(gpus))
            self._future = future
        return self._future

    def pending(self) -> Pending:
        if self._pending is None:
            self._pending = Pending(self.index)
            for rj in self.occupancy.stopping_in_start_order():
                self._pending.add(rj)
        return self._pending

    def _preempt(self, rj: RunningJob, reason: str) -> None:
        self.preempts.append(Preempt(rj.job.job_id, reason))
        if not reason.startswith("repack"):  # a moved job lands at once: its owner loses nothing
            self.quotas.lost(rj.owner, rj.job.total)
        self.preempted.add(rj.job.job_id)
        self.pending().add(rj)
        future = self.future()
        for slot in rj.placement:
            future.give(self.index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)

    def _take(self, placement: Placement) -> None:
        """Remove a claimed placement: first from capacity being freed, the rest from free capacity."""
        pending = self.pending()
        commit(self.future(), placement, self.index)
        for slot in placement:
            cpus, mem, gpus = pending.take(slot)
            self.view.take(self.index[slot.node], cpus, mem, gpus)

    def _victims_of(self, job: Job) -> Victims:
        """Whom `job` may preempt. A blocked job whose claim failed asks again to repack, with
        nothing changed in between: the answer is kept until an owner's holdings change or a
        job is preempted."""
        key = (job.job_id, self.quotas.revision, len(self.preempted))
        if self._victims is None or self._victims[0] != key:
            self._victims = key, choose_victims(job, self._movable(), self.quotas, self.config.priority_classes,
                                                self.owners, self.preempted, self.snap.cluster.total, self._settled_s)
        return self._victims[1]

    def _movable(self) -> Movable:
        if self._by_group is None:
            self._by_group = Movable(self.occupancy.movable)
        return self._by_group

    def _movers(self, future: FreeView) -> dict[int, list[RunningJob]]:
        """On the nodes with the most idle GPUs, the movable jobs that run only there, cheapest first."""
        targets: dict[str, int] = {}
        for k in range(len(future.buckets) - 1, -1, -1):
            for i in future.buckets[k]:
                targets[future.nodes[i].name] = i
                if len(targets) >= REPACK_NODES:
                    break
            if len(targets) >= REPACK_NODES:
                break
        on_node = self.occupancy.on_node
        return {i: on_node[name] for name, i in targets.items() if on_node.get(name)}


def _reason(kind: str, job: Job) -> str:
    if kind == "priority":
        return f"priority: {job.job_id} (class {job.priority}) needs its resources"
    return f"reclaim: {job.owner} is below its guarantee or fair share"
