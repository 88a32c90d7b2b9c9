"""Claims: a blocked job takes capacity that is being freed, preempting or repacking if needed.

A claim is a placement on "future" capacity: what is free now plus what checkpointing jobs are
about to release. The round keeps that view in step with every start and claim instead of
rebuilding it, and bounds how many claims it plans, as each plan scans the running jobs.

Who may be preempted (see `_quota` for the owner rules): a higher class preempts lower classes
of its own owner or of owners that borrow; an owner within its guarantee or below its fair
share reclaims from others in the same or lower classes. Failing that, a job that would fit in
the idle GPUs if they were on one node may move small jobs out of its way (`_repack`).
"""

from __future__ import annotations

from llmos.scheduler._config import PolicyConfig
from llmos.scheduler._decision import Preempt
from llmos.scheduler._free import FreeView
from llmos.scheduler._placement import Placement, commit
from llmos.scheduler._preempt import lost_work, plan_preemption
from llmos.scheduler._quota import Quotas
from llmos.scheduler._repack import plan_repack
from llmos.scheduler._snapshot import Snapshot
from llmos.scheduler._types import Job, RunningJob

__all__ = ["Claims"]

_PLANS_PER_ROUND = 8  # preemption plans a round may make; later rounds continue the work


class Claims:
    def __init__(self, snap: Snapshot, config: PolicyConfig, view: FreeView, quotas: Quotas) -> None:
        self.snap = snap
        self.config = config
        self.view = view
        self.quotas = quotas
        self.index = snap.cluster.index
        self.preempted: set[str] = set()
        self.preempts: list[Preempt] = []
        self.plans_left = _PLANS_PER_ROUND
        self._pending: FreeView | None = None  # being freed by checkpointing jobs, unclaimed
        self._future: FreeView | None = None  # view + pending, kept in step
        self._ranked: list[RunningJob] | None = None

    def claim(self, job: Job, respect_holds: bool) -> Placement | None:
        """Claim capacity for `job` (preempting or repacking if allowed); None if it cannot."""
        future = self.future()
        placement = plan_preemption(job, future, [], self.index, self.snap.cluster.total, respect_holds)
        if placement is None:
            if self.plans_left <= 0:
                return None
            self.plans_left -= 1
            placement = self._plan(job, future, respect_holds)
            if placement is None:
                return None
        else:
            placement = placement[0]
        self._take(placement)
        return placement

    def _plan(self, job: Job, future: FreeView, respect_holds: bool) -> Placement | None:
        total = self.snap.cluster.total
        allowed = self._victims(job)
        plan = plan_preemption(job, future, [rj for rj, _ in allowed.values()], self.index, total, respect_holds)
        if plan is not None:
            for rj in plan[1]:
                self._preempt(rj, allowed[rj.job.job_id][1])
            return plan[0]
        classes = self.config.priority_classes
        movable = [rj for rj in self._movable()
                   if rj.job.job_id not in self.preempted and (not classes or rj.job.priority <= job.priority)]
        repack = plan_repack(job, future, movable, self.index, total, respect_holds)
        if repack is None:
            return None
        for rj, target in repack[1]:
            self._preempt(rj, f"repack: moving to make room for {job.job_id}")
            self._take(target)  # keep the moved job's landing spot free this round
        return repack[0]

    def started(self, placement: Placement) -> None:
        """A job started on free capacity: the future view loses it too."""
        if self._future is not None:
            commit(self._future, placement, self.index)

    def future(self) -> FreeView:
        if self._future is None:
            future = self.view.clone()
            pending = self.pending()
            for i, gpus in enumerate(pending.gpus):
                if gpus or pending.cpus[i] > 0 or pending.mem[i] > 0:
                    future.give(i, pending.cpus[i], pending.mem[i], gpus)
            self._future = future
        return self._future

    def pending(self) -> FreeView:
        if self._pending is None:
            n = len(self.snap.cluster.nodes)
            self._pending = FreeView(self.snap.cluster.nodes, [0.0] * n, [0.0] * n, [()] * n, [set(range(n))], {})
            for rj in self.snap.running:
                if rj.stopping:
                    self._release(self._pending, rj)
        return self._pending

    def _release(self, view: FreeView, rj: RunningJob) -> None:
        for slot in rj.placement:
            view.give(self.index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)

    def _preempt(self, rj: RunningJob, reason: str) -> None:
        self.preempts.append(Preempt(rj.job.job_id, reason))
        self.preempted.add(rj.job.job_id)
        self._release(self.pending(), rj)
        self._release(self.future(), rj)

    def _take(self, placement: Placement) -> None:
        """Remove a claimed placement: first from capacity being freed, the rest from free capacity."""
        pending = self.pending()
        commit(self.future(), placement, self.index)
        for slot in placement:
            i = self.index[slot.node]
            from_pending = tuple(g for g in slot.gpu_indices if g in pending.gpus[i])
            from_free = tuple(g for g in slot.gpu_indices if g not in from_pending)
            c = min(slot.cpus, pending.cpus[i])
            m = min(slot.memory_gb, pending.mem[i])
            pending.take(i, c, m, from_pending)
            self.view.take(i, slot.cpus - c, slot.memory_gb - m, from_free)

    def _movable(self) -> list[RunningJob]:
        """Preemptible running jobs, cheapest to preempt first (ranked once per round)."""
        if self._ranked is None:
            total = self.snap.cluster.total
            jobs = [rj for rj in self.snap.running if rj.job.preemptible and not rj.stopping]
            self._ranked = sorted(jobs, key=lambda rj: (lost_work(rj, total), -rj.start_s))
        return self._ranked

    def _victims(self, job: Job) -> dict[str, tuple[RunningJob, str]]:
        """Running jobs `job` may preempt (by id, cheapest first), with the reason each is told."""
        classes = self.config.priority_classes
        quotas = self.quotas
        reclaim = quotas.may_reclaim(job)
        if not classes and not reclaim:
            return {}
        guaranteed = quotas.within_guarantee(job)
        total = self.snap.cluster.total
        budget: dict[str, float] = {}  # dominant share each owner can still lose to fair-share reclaim
        out: dict[str, tuple[RunningJob, str]] = {}
        for rj in self._movable():
            other = rj.job
            if other.job_id in self.preempted or (classes and other.priority > job.priority):
                continue
            if classes and other.priority < job.priority and (other.owner == job.owner
                                                              or quotas.borrowing(other.owner)):
                out[other.job_id] = (rj, f"priority: {job.job_id} (class {job.priority}) needs its resources")
            elif reclaim and quotas.reclaimable_from(job, other.owner):
                if not guaranteed:
                    left = budget.setdefault(other.owner, quotas.excess(other.owner))
                    share = other.total.dominant_share(total)
                    if share > left + 1e-9:
                        continue
                    budget[other.owner] = left - share
                out[other.job_id] = (rj, f"reclaim: {job.owner} is below its guarantee or fair share and "
                                         f"{other.owner} is above")
        return out
